"""ResNet-18/34 (v1, basic blocks) without normalisation, in SP (App. A). Every convolution (stem, blocks,
projections) and the readout are LeCun normal, variance 1/fan_in: flax's default, which the authors' ResNet uses;
with He-normal convolutions the residual sums grow the output to L0 ~ 35 (ResNet-18) and ~ 800 (ResNet-34) at w = 32,
where the paper has L0 = O(1) (footnote 5)."""

import torch
import torch.nn.functional as F
from torch import nn

from .fcn import dense

# basic blocks per stage; stage i has width w * 2**i
STAGES: dict[int, tuple[int, ...]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, *, bias: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=bias)
        reshape = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=bias) if reshape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    CONV_GAIN = 1.0  # LeCun normal (models._initialise)

    def __init__(self, depth: int, width: int, in_channels: int, num_classes: int, *, bias: bool = False):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 7, 2, padding=3, bias=bias)
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        blocks: list[nn.Module] = []
        channels = width
        for stage, n_blocks in enumerate(STAGES[depth]):
            out_channels = width * 2**stage
            for j in range(n_blocks):
                stride = 2 if stage > 0 and j == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride, bias=bias))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.readout = dense(channels, num_classes, gain=1.0, param="sp", bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.stem(x)))
        return self.readout(self.blocks(x).mean(dim=(2, 3)))
