"""The two losses of the paper, as functions of (outputs, one-hot targets) -> scalar mean."""

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0.5 * mean over examples and classes of (f - y)^2, as in the paper's code."""
    return 0.5 * (outputs - targets).pow(2).mean()


def xent(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy against one-hot (or soft) targets."""
    return F.cross_entropy(outputs, targets)


LOSSES: dict[str, LossFn] = {"mse": mse, "xent": xent}
