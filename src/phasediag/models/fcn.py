"""Fully connected ReLU network in standard (SP) or neural tangent (NTP) parameterisation (App. A, Eq. 2)."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Dense(nn.Module):
    """y = multiplier * W x (+ b), W ~ N(0, std^2). SP puts the 1/fan_in scale in std, NTP in multiplier."""

    def __init__(self, fan_in: int, fan_out: int, *, std: float, multiplier: float = 1.0, bias: bool = False):
        super().__init__()
        self.std = std
        self.multiplier = multiplier
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in))
        self.register_parameter("bias", nn.Parameter(torch.empty(fan_out)) if bias else None)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.weight.normal_(0.0, self.std, generator=generator)
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


def dense(fan_in: int, fan_out: int, *, gain: float, param: str, bias: bool = False) -> Dense:
    """A layer whose outputs have variance gain/fan_in * |input|^2 at init, in either parameterisation.

    gain = 2 keeps a ReLU network at criticality (He); gain = 1 for the linear readout. With the same
    generator, SP and NTP draw the same standard normals, so they give the same function at init.
    """
    scale = math.sqrt(gain / fan_in)
    if param == "sp":
        return Dense(fan_in, fan_out, std=scale, multiplier=1.0, bias=bias)
    return Dense(fan_in, fan_out, std=1.0, multiplier=scale, bias=bias)


class FCN(nn.Module):
    """`depth` dense layers counting the readout: depth-1 hidden ReLU layers of `width` units, then a linear readout."""

    def __init__(self, in_features: int, depth: int, width: int, num_classes: int, *, param: str = "sp",
                 bias: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = in_features
        for _ in range(depth - 1):
            layers += [dense(fan_in, width, gain=2.0, param=param, bias=bias), nn.ReLU()]
            fan_in = width
        self.hidden = nn.Sequential(*layers)
        self.readout = dense(fan_in, num_classes, gain=1.0, param=param, bias=bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's output: affine in that layer's parameters."""
        first = self.hidden[0] if len(self.hidden) else self.readout
        return first(x.flatten(1))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the network, from the first layer's output."""
        return self.readout(self.hidden[1:](h)) if len(self.hidden) else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))
