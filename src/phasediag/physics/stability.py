"""Where each optimizer loses stability, and the warmup schedule. Pure functions.

On a quadratic loss whose sharpness is lambda_max(H) (sgd, momentum, nesterov) or lambda_max(P_0^-1 H) (adam, adamw,
P frozen), each optimizer is stable iff eta * lambda < T, its threshold:

* sgd:       T = 2
* momentum:  T = 2 + 2 beta              (heavy ball, torch's form b = beta b + g, theta -= eta b)
* nesterov:  T = (2 + 2 beta) / (1 + 2 beta)   (torch's form theta -= eta (g + beta b))
* adam(w):   T = (2 + 2 beta1) / (1 - beta1)   (m an exponential average: heavy ball at eta (1 - beta1); Cohen et al.
  2022 give 38 / eta for beta1 = 0.9)

Each optimizer's first update is plain (pre-conditioned) gradient descent, at eta (heavy ball, Adam with its bias
correction of m) or eta (1 + beta) (nesterov): the first step's edge is c = 2 (nesterov: 2 / (1 + beta)), and the
threshold rises to T as the momentum builds up, with transient growth below T on the way (docs/optimizers.md).

The first step theta_1 = theta_0 - eta u itself raises a quadratic loss iff eta > 2 / lambda_u, lambda_u = u.Hu / g.u
the curvature along the update (`update_curvature`): for SGD at large width u = g lines up with H's top eigenvector
and lambda_u -> lambda_max(H), but Adam's first update (u ~ sign(g)) sees a curvature hundreds of times below
lambda_max(P_0^-1 H), whose top directions are the weights with the smallest first gradients.
"""

from collections.abc import Callable

import torch

from phasediag.vocabulary import OPTIMIZERS


def stability_threshold(optimizer: str, momentum: float = 0.0, beta1: float = 0.0) -> float:
    """T: the largest stable c = eta * lambda on a quadratic, once the momentum has built up (Adam: P frozen)."""
    if optimizer == "sgd":
        return 2.0
    if optimizer == "momentum":
        return 2.0 + 2.0 * momentum
    if optimizer == "nesterov":
        return (2.0 + 2.0 * momentum) / (1.0 + 2.0 * momentum)
    if optimizer in ("adam", "adamw"):
        return (2.0 + 2.0 * beta1) / (1.0 - beta1)
    raise ValueError(f"optimizer={optimizer!r} is not allowed: use one of {', '.join(OPTIMIZERS)}")


def warmup_factor(step: int, warmup_steps: int, warmup_init: float = 0.0) -> float:
    """eta_step / eta for update number `step` (1, 2, ...): linear from warmup_init (step 0) to 1 (step = warmup_steps),
    then 1; warmup_steps = 0: always 1 (the paper's constant eta)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return warmup_init + (1.0 - warmup_init) * step / warmup_steps


def update_curvature(hvp: Callable[[torch.Tensor], torch.Tensor], gradient: torch.Tensor, update: torch.Tensor) -> float:
    """lambda_u = u.Hu / g.u (flat vectors): on a quadratic loss the step -eta u raises the loss iff eta lambda_u > 2;
    NaN where u is not a descent direction (g.u <= 0)."""
    descent = float(gradient @ update)
    return float(update @ hvp(update)) / descent if descent > 0 else float("nan")
