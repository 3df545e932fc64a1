"""Multinomial logistic regression on flattened inputs: the linear baseline of the MNIST
table (LeCun et al. 1998, "linear classifier (1-layer NN)", ~12% test error on raw pixels;
as in scikit-learn's and TensorFlow's MNIST softmax-regression examples).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipelines.models import register


@register("logreg", tasks=("classify",))
class LogisticRegression(nn.Module):
    """``softmax(W · flatten(x) + b)``; the softmax lives in the cross-entropy loss."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    @classmethod
    def from_config(cls, cfg, spec) -> LogisticRegression:
        return cls(math.prod(spec["x_shape"]), int(spec["num_classes"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))
