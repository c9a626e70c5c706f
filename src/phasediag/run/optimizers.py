"""The optimizers of a run (torch.optim) and the warmup schedule; Adam's pre-conditioner for its sharpness.

sgd, momentum and nesterov are torch.optim.SGD. adam and adamw are `Adam` below, a torch.optim.Optimizer that is
torch.optim.Adam / AdamW step for step when its second moment starts at zero (tests/test_optimizers.py checks it), and
also starts it at v0 = g0^2 (Kalra & Barkeshli 2024): v is then an average of squared gradients from the first step on
and takes no bias correction; m starts at zero and keeps its correction in both cases.
"""

from collections.abc import Iterable

import torch

from phasediag.physics.stability import warmup_factor
from phasediag.run.config import RunConfig


class Adam(torch.optim.Optimizer):
    """Adam (weight decay as L2 in the gradient) or, decoupled=True, AdamW; second moment from `v0` (one tensor per
    parameter, in order) or zero. P = sqrt(v_hat) + eps is the diagonal pre-conditioner of the next step's scale."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float = 0.0, decoupled: bool = False, v0: list[torch.Tensor] | None = None) -> None:  # fmt: skip
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled))
        self.corrects_v = v0 is None
        moments = iter(v0) if v0 is not None else None
        for p in self.parameters():
            second = torch.zeros_like(p) if moments is None else next(moments).detach().clone().to(p)
            self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": second}

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def _v_hat(self, p: torch.nn.Parameter, beta2: float) -> torch.Tensor:
        state = self.state[p]
        if self.corrects_v and state["step"] > 0:
            return state["exp_avg_sq"] / (1 - beta2 ** state["step"])
        return state["exp_avg_sq"]

    def preconditioner(self) -> torch.Tensor:
        """P = sqrt(v_hat) + eps, flat, in parameter order: the scale of the last step's update (with v = 0: eps)."""
        group = self.param_groups[0]
        return torch.cat([(self._v_hat(p, group["betas"][1]).sqrt() + group["eps"]).reshape(-1) for p in self.parameters()])

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad = p.grad if decay == 0 or group["decoupled"] else p.grad + decay * p
                if decay and group["decoupled"]:
                    p.mul_(1 - lr * decay)
                state["step"] += 1
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
                p.addcdiv_(m_hat, self._v_hat(p, beta2).sqrt().add_(eps), value=-lr)
        return loss


def build_optimizer(config: RunConfig, params: list[torch.nn.Parameter], eta: float,
                    v0: list[torch.Tensor] | None = None) -> torch.optim.Optimizer:  # fmt: skip
    """config.optimizer at learning rate eta; v0: Adam's second moment at step 0 (adam_v0=gradient)."""
    if config.optimizer in ("sgd", "momentum", "nesterov"):
        beta = 0.0 if config.optimizer == "sgd" else config.momentum
        return torch.optim.SGD(params, lr=eta, momentum=beta, nesterov=config.optimizer == "nesterov",
                               weight_decay=config.weight_decay)  # fmt: skip
    return Adam(params, eta, (config.beta1, config.beta2), config.adam_eps, config.weight_decay,
                decoupled=config.optimizer == "adamw", v0=v0 if config.adam_v0 == "gradient" else None)  # fmt: skip


def warmup(optimizer: torch.optim.Optimizer, config: RunConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """eta_k = eta * warmup_factor(k) for update k = 1, 2, ... (LambdaLR counts the updates done, from 0)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: warmup_factor(done + 1, config.warmup_steps, config.warmup_init)
    )
