"""The uv model of Sec. 5: f(x) = v.u x / sqrt(w), the smallest model with loss and sharpness catapults."""

import math

import torch
from torch import nn


class UV(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.u = nn.Parameter(torch.empty(width))
        self.v = nn.Parameter(torch.empty(width))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.u.normal_(generator=generator)
        self.v.normal_(generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.u @ self.v) / math.sqrt(self.width)  # (N, 1) -> (N, 1)
