"""A multilayer perceptron on flattened inputs: the MLP of the PyTorch MNIST tutorial seed
(``flatten → [Linear → ReLU → Dropout] × layers → Linear``), between the linear baseline
(``logreg``) and the convolutional and recurrent families.

``hidden`` units per layer, ``layers`` hidden layers, ``dropout`` after each.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipelines.models import register


@register("mlp", tasks=("classify",))
class MLP(nn.Module):
    """``layers`` fully connected ReLU layers of ``hidden`` units, then class logits."""

    def __init__(
        self, in_features: int, hidden: int, layers: int, dropout: float, num_classes: int
    ) -> None:
        super().__init__()
        parts: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            parts += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        parts.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*parts)

    @classmethod
    def from_config(cls, cfg, spec) -> MLP:
        return cls(
            math.prod(spec["x_shape"]),
            cfg.hidden,
            cfg.layers,
            cfg.dropout,
            int(spec["num_classes"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
