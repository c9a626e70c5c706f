"""The LightningModule: plain SGD (no momentum) at a fixed learning rate eta = c / lambda0."""

import lightning as L
import torch

from phasediag.physics.losses import LossFn


class EarlyTraining(L.LightningModule):
    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, eta: float) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.eta = eta
        self.batch_losses: list[float] = []  # minibatch loss of the update that produced theta_t, t >= 1

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = self.loss_fn(self.model(inputs), targets)
        self.batch_losses.append(loss.item())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.eta, momentum=0.0)
