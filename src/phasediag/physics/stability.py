"""Where each optimizer loses stability, and the warmup schedule. Pure functions.

Every optimizer trains at eta = c / lambda0, lambda0 the curvature that sets its stability at initialisation: the
sharpness lambda_max(H) (sgd, momentum, nesterov) or the pre-conditioned sharpness lambda_max(P_0^-1 H) (adam, adamw).
On a quadratic loss of that curvature (P frozen), it is stable iff c = eta * lambda < T, its threshold:

* sgd:       T = 2
* momentum:  T = 2 + 2 beta              (heavy ball, torch's form b = beta b + g, theta -= eta b)
* nesterov:  T = (2 + 2 beta) / (1 + 2 beta)   (torch's form theta -= eta (g + beta b))
* adam(w):   T = (2 + 2 beta1) / (1 - beta1)   (m an exponential average: heavy ball at eta (1 - beta1); Cohen et al.
  2022 give 38 / eta for beta1 = 0.9)

Each optimizer's first update is plain (pre-conditioned) gradient descent, at eta (heavy ball, Adam with its bias
correction of m) or eta (1 + beta) (nesterov): the first step's edge is c = 2 (nesterov: 2 / (1 + beta)), and the
threshold rises to T as the momentum builds up, with transient growth below T on the way (docs/optimizers.md).
"""

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
