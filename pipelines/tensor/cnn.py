"""The MNIST convolutional net of pytorch/examples (``mnist/main.py``, class ``Net``):
conv3x3(32) → ReLU → conv3x3(64) → ReLU → maxpool2 → dropout .25 → fc128 → ReLU → dropout .5 → fc.

The only change: the fc input size follows the spec's image shape instead of MNIST's 9216.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipelines.models import register


@register("cnn", tasks=("classify",))
class ConvNet(nn.Module):
    """Input ``(B, H, W)`` images (one channel), output class logits."""

    def __init__(self, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        if min(height, width) < 6:
            raise ValueError(f"cnn needs images of at least 6x6, got {height}x{width}")
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * ((height - 4) // 2) * ((width - 4) // 2), 128)
        self.fc2 = nn.Linear(128, num_classes)

    @classmethod
    def from_config(cls, cfg, spec) -> ConvNet:
        shape = list(spec["x_shape"])
        if len(shape) != 2:
            raise ValueError(f"cnn needs 2-D images, spec x_shape is {shape}")
        return cls(shape[0], shape[1], int(spec["num_classes"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x.unsqueeze(1)))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)
