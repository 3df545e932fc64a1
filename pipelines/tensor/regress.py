"""``regress``: one real value per example (the next value of a time series).

MSE on normalised targets; ``mse``/``rmse`` in the data's own units (undoing
``y_mean``/``y_std``) beside the naive last-value baseline's ``baseline_rmse``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.tasks import register
from pipelines.tensor import TensorTask


@register("regress")
class Regress(TensorTask):
    headline = "rmse"
    higher_is_better = False
    report_extras = ("baseline_rmse",)
    target_dtype = np.float32
    needs_classes = False

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.float(), y)

    def scores(self, spec, out, y, x, res: dict[str, Any]) -> None:
        n = res["n"]
        std = float(spec.get("y_std") or 1.0)
        mse = float(F.mse_loss(out, y)) * std**2 if n else float("nan")
        res["mse"], res["rmse"] = mse, mse**0.5
        if x is not None and n:
            # The naive forecast: the series' last observed value (x and y share normalisation).
            last = x.reshape(n, x.shape[1] if x.dim() > 1 else 1, -1)[:, -1, 0]
            res["baseline_rmse"] = float(F.mse_loss(last, y)) ** 0.5 * std

    def predictions(self, spec: dict[str, Any], out: torch.Tensor) -> torch.Tensor:
        """De-normalised predicted values."""
        return out * float(spec.get("y_std") or 1.0) + float(spec.get("y_mean") or 0.0)

    def targets(self, spec: dict[str, Any], y: torch.Tensor) -> torch.Tensor:
        """De-normalised true values (as :meth:`predictions`)."""
        return self.predictions(spec, y)
