"""Myrtle family ReLU CNN in SP (App. A): 3x3 SAME convs of constant width (He normal), average pooling, global
average pooling (the authors' two further 2x2 poolings of a 4x4 map) and a LeCun-normal linear readout."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fcn import dense, mup_layer

# 1-based indices of the conv layers followed by a 2x2 average pooling, per depth (convs + readout): the 2nd, 3rd,
# 4th conv at d = 5, ... (the authors' Myrtle pools after the 0-based indices {1, 2, 3}, {1, 3, 5}, {2, 5, 8}).
POOL_AFTER: dict[int, tuple[int, ...]] = {5: (2, 3, 4), 7: (2, 4, 6), 10: (3, 6, 9)}


def pool_after(depth: int, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Where to pool for inputs of shape (C, H, W): 28x28 images stop halving at 7x7 (28 -> 14 -> 7)."""
    pools = POOL_AFTER[depth]
    return pools[:-1] if tuple(in_shape[1:]) == (28, 28) else pools


class Conv(nn.Conv2d):
    """3x3 SAME convolution y = multiplier * (w * x) (+ b), w ~ N(0, std^2) (models._initialise)."""

    def __init__(self, in_channels: int, out_channels: int, *, std: float, multiplier: float = 1.0, bias: bool = False):
        super().__init__(in_channels, out_channels, 3, padding=1, bias=bias)
        self.std, self.multiplier = std, multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.multiplier == 1.0:
            return super().forward(x)
        y = F.conv2d(x, self.weight, None, padding=1) * self.multiplier
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class MyrtleCNN(nn.Module):
    CONV_GAIN = 2.0  # He normal, the authors' varw = 2 (init_scale)

    def __init__(self, depth: int, width: int, in_shape: tuple[int, ...], num_classes: int, *, bias: bool = False,
                 param: str = "sp", init_scale: float = CONV_GAIN):  # fmt: skip
        super().__init__()
        pools = pool_after(depth, in_shape)
        layers: list[nn.Module] = []
        channels = in_shape[0]
        for i in range(1, depth):
            std, multiplier = math.sqrt(init_scale / (9 * channels)), 1.0
            if param == "mup":  # the first convolution is muP's input layer, the others hidden ones (models.fcn)
                std, multiplier = mup_layer(std, width, "input" if i == 1 else "hidden")
            layers += [Conv(channels, width, std=std, multiplier=multiplier, bias=bias), nn.ReLU()]
            if i in pools:
                layers.append(nn.AvgPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.readout = dense(width, num_classes, gain=1.0, param=param, bias=bias, role="output")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x).mean(dim=(2, 3)))  # global average pooling to 1x1
