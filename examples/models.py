"""An architecture that is not in the paper, for `--arch examples.models:mixer`: a small MLP-Mixer (Tolstikhin et
al. 2021) on image patches, with pre-LayerNorm residual blocks.

A factory is called as factory(*, depth, width, in_shape, num_classes) and returns a torch.nn.Module mapping a batch
(N, *in_shape) to (N, num_classes). phasediag seeds the random number generator around the call, so the factory
draws its weights from torch's default generator as usual.
"""

import math

import torch
from torch import nn

PATCH_SIDES = (7, 4, 2, 1)  # the first that divides the image's height and width (7 for 28 x 28: 16 patches)


def mixer(*, depth: int, width: int, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """`depth` mixer blocks of `width` channels on the patches of (C, H, W) images; mean-pooled linear readout."""
    channels, height, side = in_shape
    patch = next(p for p in PATCH_SIDES if height % p == 0 and side % p == 0)
    return Mixer(depth, width, channels, (height // patch, side // patch), patch, num_classes)


class MLP(nn.Sequential):
    def __init__(self, features: int, hidden: int):
        super().__init__(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, features))


class MixerBlock(nn.Module):
    """x + token-mixing MLP(LN(x)) across patches, then x + channel-mixing MLP(LN(x)) across channels."""

    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.token_norm, self.token_mlp = nn.LayerNorm(width), MLP(tokens, 2 * tokens)
        self.channel_norm, self.channel_mlp = nn.LayerNorm(width), MLP(width, 2 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, tokens, width)
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


class Mixer(nn.Module):
    def __init__(self, depth: int, width: int, channels: int, grid: tuple[int, int], patch: int, num_classes: int):
        super().__init__()
        self.patch, self.grid = patch, grid
        tokens = grid[0] * grid[1]
        self.embed = nn.Linear(channels * patch * patch, width)
        self.blocks = nn.Sequential(*(MixerBlock(tokens, width) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, num_classes)
        # LeCun normal weights, zero biases (the paper's standard parameterisation). After the last LayerNorm every
        # channel has unit variance whatever the width, so the output stays O(1): mean ||f||^2 / k = 0.07-0.22 on
        # Fashion-MNIST at widths 16-256 and depths 1-4 (the mean over patches averages part of it away)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 1.0 / math.sqrt(module.in_features))
                nn.init.zeros_(module.bias)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, tokens, C * patch * patch), row-major over the patch grid."""
        n, c, p = x.shape[0], x.shape[1], self.patch
        x = x.reshape(n, c, self.grid[0], p, self.grid[1], p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, self.grid[0] * self.grid[1], c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.embed(self.patches(x)))
        return self.readout(self.norm(h).mean(1))
