"""A loader for `--dataset examples.data:teacher`: regression targets from a fixed random teacher network.

A loader is a function of no arguments returning (x_train, y_train), or a torch.utils.data.Dataset of (x, y)
pairs. Integer y_train are class indices (one-hot targets, mse or xent); float y_train are used as given (mse).
"""

import torch

EXAMPLES, FEATURES, HIDDEN, OUTPUTS = 4096, 32, 64, 4


def teacher() -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs (N, 32) and the outputs (N, 4) of a two-layer tanh teacher with unit-variance outputs; the
    same data on every call (its own seeded generator)."""
    generator = torch.Generator().manual_seed(2023)
    x = torch.randn(EXAMPLES, FEATURES, generator=generator)
    w1 = torch.randn(FEATURES, HIDDEN, generator=generator) / FEATURES**0.5
    w2 = torch.randn(HIDDEN, OUTPUTS, generator=generator) / HIDDEN**0.5
    y = torch.tanh(x @ w1) @ w2
    return x, y / y.std()
