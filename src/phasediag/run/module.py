"""The LightningModule: config.optimizer (the paper's plain SGD by default) at eta = c / lambda0 (normalised per
optimizer, physics/stability.py), with an optional linear warmup."""

import lightning as L
import torch

from phasediag.physics.losses import LossFn
from phasediag.run.config import RunConfig
from phasediag.run.optimizers import build_optimizer, warmup


class EarlyTraining(L.LightningModule):
    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, eta: float, config: RunConfig | None = None,
                 second_moment: list[torch.Tensor] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.eta = eta
        self.config = config or RunConfig()
        self.second_moment = second_moment  # Adam's v0 = g0^2 (adam_v0=gradient)
        self.batch_losses: list[float] = []  # minibatch loss of the update that produced theta_t, t >= 1

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = self.loss_fn(self.model(inputs), targets)
        self.batch_losses.append(loss.item())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        trainable = [p for p in self.model.parameters() if p.requires_grad]  # the order of hessian.trainable_parameters
        optimizer = build_optimizer(self.config, trainable, self.eta, self.second_moment)
        if self.config.warmup_steps == 0:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup(optimizer, self.config), "interval": "step"}}
