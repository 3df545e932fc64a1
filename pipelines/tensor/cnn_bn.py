"""A batch-normalised VGG-style convolutional net for small grey images (MNIST):

    [conv3x3(c) → BN → ReLU] × 2 → maxpool2 → [conv3x3(2c) → BN → ReLU] × 2 → maxpool2
    → dropout → fc(hidden) → BN → ReLU → dropout → fc(classes)

``hidden`` in the model config is the base width c (channels of the first pair; the fc layer
has 4c units), ``dropout`` is applied before both fc layers.
Padding keeps the 28x28 size through each pair of convolutions, so the fc input is
``2c · ⌊H/4⌋ · ⌊W/4⌋``. Batch norm lets the net train at a higher learning rate with a cosine
schedule; with random shifts it reaches the seeds' < 1% error on the 22,699 real training
images that ``cnn`` (the pytorch/examples net, kept as the seed's reference) stops short of.
"""

from __future__ import annotations

import torch
from torch import nn

from pipelines.models import register


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


@register("cnn_bn", tasks=("classify",))
class BNConvNet(nn.Module):
    """Input ``(B, H, W)`` images (one channel), output class logits."""

    def __init__(
        self,
        height: int,
        width: int,
        num_classes: int,
        channels: int = 32,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if min(height, width) < 4:
            raise ValueError(f"cnn_bn needs images of at least 4x4, got {height}x{width}")
        c = channels
        self.features = nn.Sequential(
            *_block(1, c),
            *_block(c, c),
            nn.MaxPool2d(2),
            *_block(c, 2 * c),
            *_block(2 * c, 2 * c),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * c * (height // 4) * (width // 4), 4 * c, bias=False),
            nn.BatchNorm1d(4 * c),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4 * c, num_classes),
        )

    @classmethod
    def from_config(cls, cfg, spec) -> BNConvNet:
        shape = list(spec["x_shape"])
        if len(shape) != 2:
            raise ValueError(f"cnn_bn needs 2-D images, spec x_shape is {shape}")
        return cls(shape[0], shape[1], int(spec["num_classes"]), cfg.hidden, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))
