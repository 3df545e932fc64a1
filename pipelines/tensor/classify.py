"""``classify``: one label per example (MNIST digits, bit counting, parity).

Cross-entropy; ``accuracy`` (+ ``parity_accuracy`` when ``spec.derived == "parity"``: the model
predicts the count of ones, parity is ``count % 2``). Classifiers of up to
``evaluate.confusion_max_classes`` classes write a confusion row per test example.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pipelines.tasks import register
from pipelines.tensor import TensorTask, mean


@register("classify")
class Classify(TensorTask):
    headline = "accuracy"
    higher_is_better = True
    report_extras = ("parity_accuracy",)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y)

    def scores(self, spec, out, y, x, res: dict[str, Any]) -> None:
        pred = out.argmax(-1)
        res["accuracy"] = mean(pred == y)
        if spec.get("derived") == "parity":
            res["parity_accuracy"] = mean(pred % 2 == y % 2)

    def confusion_rows(self, spec: dict[str, Any], max_classes: int) -> bool:
        return spec["num_classes"] <= max_classes
