"""``tag``: one label per step of a sequence (binary addition: the sum bit at each step).

Per-step cross-entropy; ``bit_accuracy`` (per step) and ``sequence_accuracy`` (every step
right). ``accuracy`` is the bit accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pipelines.tasks import register
from pipelines.tensor import TensorTask, mean


@register("tag")
class Tag(TensorTask):
    headline = "accuracy"
    higher_is_better = True
    report_extras = ("sequence_accuracy",)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float().flatten(0, -2), y.flatten())

    def scores(self, spec, out, y, x, res: dict[str, Any]) -> None:
        right = out.argmax(-1) == y
        res["accuracy"] = res["bit_accuracy"] = mean(right)
        res["sequence_accuracy"] = mean(right.flatten(1).all(1))
