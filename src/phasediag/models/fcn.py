"""Fully connected ReLU network in standard (SP), neural tangent (NTP, App. A, Eq. 2) or maximal update (muP, Yang et
al. 2022) parameterisation. In the abc form W = n^-a w, w ~ N(0, sigma^2 n^-2b) (n the width; the fan-in constants
kept, so all three give the same function at init but muP's readout, 1/sqrt(n) smaller):

    layer    SP (a, b)   NTP (a, b)   muP (a, b), SGD
    input    0, 0        0, 0         -1/2, 1/2
    hidden   0, 1/2      1/2, 0       0, 1/2
    output   0, 1/2      1/2, 0       1/2, 1/2
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .init import draw_


class Dense(nn.Module):
    """y = multiplier * W x (+ b), W ~ N(0, std^2). SP puts the 1/fan_in scale in std, NTP in multiplier."""

    def __init__(self, fan_in: int, fan_out: int, *, std: float, multiplier: float = 1.0, bias: bool = False):
        super().__init__()
        self.std = std
        self.multiplier = multiplier
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in))
        self.register_parameter("bias", nn.Parameter(torch.empty(fan_out)) if bias else None)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None, init: str = "normal") -> None:
        draw_(self.weight, self.std, init, generator)
        if self.bias is not None:
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.multiplier == 1.0:
            return F.linear(x, self.weight, self.bias)
        y = F.linear(x, self.weight) * self.multiplier
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"{inp}, {out}, std={self.std:.4g}, multiplier={self.multiplier:.4g}, bias={self.bias is not None}"


def dense(fan_in: int, fan_out: int, *, gain: float, param: str, bias: bool = False, role: str = "hidden") -> Dense:
    """A layer whose outputs have variance gain/fan_in * |input|^2 at init (muP's readout: 1/n of it).

    gain = 2 keeps a ReLU network at criticality (He); gain = 1 for the linear readout. With the same
    generator, SP and NTP draw the same standard normals, so they give the same function at init.
    role (input, hidden or output) matters to muP only (the table above; n = fan_out of the input layer, else fan_in).
    """
    scale = math.sqrt(gain / fan_in)
    if param == "sp":
        return Dense(fan_in, fan_out, std=scale, multiplier=1.0, bias=bias)
    if param == "ntp":
        return Dense(fan_in, fan_out, std=1.0, multiplier=scale, bias=bias)
    std, multiplier = mup_layer(scale, fan_out if role == "input" else fan_in, role)
    return Dense(fan_in, fan_out, std=std, multiplier=multiplier, bias=bias)


def mup_layer(scale: float, width: int, role: str) -> tuple[float, float]:
    """(std of w, multiplier n^-a) of a muP layer whose SP weights would have std `scale`: b = 1/2 everywhere,
    a = -1/2 (input), 0 (hidden), 1/2 (output)."""
    a = {"input": -0.5, "hidden": 0.0, "output": 0.5}[role]
    multiplier = width**-a
    return (scale / multiplier if role == "input" else scale), multiplier


class FCN(nn.Module):
    """`depth` dense layers counting the readout: depth-1 hidden ReLU layers of `width` units, then a linear readout."""

    def __init__(self, in_features: int, depth: int, width: int, num_classes: int, *, param: str = "sp",
                 bias: bool = False, init_scale: float = 2.0):  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = in_features
        for i in range(depth - 1):
            role = "input" if i == 0 else "hidden"
            layers += [dense(fan_in, width, gain=init_scale, param=param, bias=bias, role=role), nn.ReLU()]
            fan_in = width
        self.hidden = nn.Sequential(*layers)
        self.readout = dense(fan_in, num_classes, gain=1.0, param=param, bias=bias, role="output")

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's output: affine in that layer's parameters."""
        first = self.hidden[0] if len(self.hidden) else self.readout
        return first(x.flatten(1))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the network, from the first layer's output."""
        return self.readout(self.hidden[1:](h)) if len(self.hidden) else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))
