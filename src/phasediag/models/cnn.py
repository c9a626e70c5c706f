"""Myrtle family ReLU CNN in SP (App. A): 3x3 SAME convs of constant width, average pooling, linear readout."""

import torch
from torch import nn

from .fcn import dense

# 1-based indices of the conv layers followed by a 2x2 average pooling, per depth (convs + readout).
POOL_AFTER: dict[int, tuple[int, ...]] = {5: (1, 2, 3), 7: (1, 3, 5), 10: (2, 5, 8)}


def pool_after(depth: int, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Where to pool for inputs of shape (C, H, W): 28x28 images stop halving at 7x7 (28 -> 14 -> 7)."""
    pools = POOL_AFTER[depth]
    return pools[:-1] if tuple(in_shape[1:]) == (28, 28) else pools


class MyrtleCNN(nn.Module):
    def __init__(self, depth: int, width: int, in_shape: tuple[int, ...], num_classes: int, *, bias: bool = False):
        super().__init__()
        pools = pool_after(depth, in_shape)
        layers: list[nn.Module] = []
        channels = in_shape[0]
        for i in range(1, depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=bias), nn.ReLU()]
            if i in pools:
                layers.append(nn.AvgPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.readout = dense(width, num_classes, gain=1.0, param="sp", bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x).mean(dim=(2, 3)))  # global average pooling to 1x1
