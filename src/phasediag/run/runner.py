"""One run: what is fixed per (config, seed) is computed once (`initialize`), then `train` at any c."""

import copy
import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import lightning as L
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.utilities.warnings import PossibleUserWarning
import numpy as np
import pandas as pd
import torch

from phasediag.physics import hessian
from phasediag.physics.stability import stability_threshold, update_curvature
from phasediag import signals, tracking
from phasediag.imports import is_import_path, source_digest, source_file
from phasediag.run.callbacks import (
    Barrier, DivergenceStop, Measurements, StopOnSignal, curvature_name, measure_schedule, warn_unconverged,
)  # fmt: skip
from phasediag.errors import ConfigError
from phasediag.run.config import RunConfig, data_folder
from phasediag.run.data import EarlyTrainingData, is_user_data
from phasediag.physics.losses import LOSSES
from phasediag.models import build_model
from phasediag.models.custom import check_initial_output
from phasediag.models.wrappers import Scaled, mean_output_norm, mean_output_power
from phasediag.run.module import EarlyTraining
from phasediag.run.optimizers import build_optimizer
from phasediag.vocabulary import ADAPTIVE_OPTIMIZERS

LAMBDA0_TOL_FACTOR = 0.1  # lambda0 sets eta: measure it ten times tighter than the trajectory



def device_for(accelerator: str) -> torch.device:
    if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class Initialization:
    """Shared by every c of one (config, seed): data, batch order, measurement set, theta_0 and lambda_0."""

    config: RunConfig
    data: EarlyTrainingData
    model: torch.nn.Module  # at theta_0, on `device`
    lambda0: hessian.Eigen  # for adam and adamw the pre-conditioned sharpness lambda_max(P_0^-1 H_0)
    device: torch.device
    eta_curvature: float = math.nan  # eta = c / eta_curvature: lambda0, or the curvature along the first update
    second_moment: list[torch.Tensor] | None = None  # adam, adamw: g0^2 on the first batch, per trainable parameter
    output_power: float = math.nan  # mean ||f(x; theta_0)||^2 / k on the measurement set: O(1) when L0 = O(1)
    tags: dict[str, str] = field(default_factory=dict)  # which code made the network: your own factory, its digest

    @property
    def initial_state(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.model.named_parameters()}


@dataclass
class RunResult:
    c: float
    eta: float
    history: pd.DataFrame  # index step t; loss, loss_ratio, batch_loss, sharpness, sharpness_ratio, eta_sharpness,
    # sharpness_residual, accuracy
    diverged: bool
    hvps: int
    barrier: float | None = None  # U, or with the barrier stopped at its first point above L(theta_0) a lower bound
    barrier_curve: np.ndarray | None = None  # only when the full curve was asked for
    barrier_points: int = 0  # interpolation points evaluated
    final_state: dict[str, torch.Tensor] = field(default_factory=dict)
    curvature: str = "sharpness"  # the history's name of lambda_t: preconditioned_sharpness for adam and adamw

    def summary(self) -> dict[str, float]:
        """Run-level metrics."""
        metrics = {
            "eta": self.eta,
            "diverged": float(self.diverged),
            "max_loss_ratio": float(self.history["loss_ratio"].iloc[1:].max()),
            f"max_{self.curvature}_ratio": float(self.history[f"{self.curvature}_ratio"].iloc[1:].max()),
            "hvps": float(self.hvps),
            f"{self.curvature}_residual_max": float(self.history[f"{self.curvature}_residual"].max()),
        }
        if self.barrier is not None:
            metrics["barrier"] = self.barrier if math.isfinite(self.barrier) else 1e300
            metrics["barrier_points"] = float(self.barrier_points)
        return {k: v for k, v in metrics.items() if not math.isnan(v)}


def initialize(config: RunConfig) -> Initialization:
    data = EarlyTrainingData(
        config.dataset, config.data_dir, config.subset, config.data_seed, config.batch_size, config.measure_size,
        config.download, config.standardize,
    )
    device = device_for(config.accelerator)
    model = build_model(
        config.arch, config.depth, config.width, param=config.param, in_shape=data.in_shape,
        num_classes=data.num_classes, seed=config.seed, bias=config.bias, output=config.output,
        output_scale=config.output_scale, output_sigma=config.output_sigma, init_scale=config.init_scale, init=config.init,
    ).to(device)  # fmt: skip
    inputs, targets = (t.to(device) for t in data.measurement_set)
    if config.output_norm is not None:  # App. H.1: f_s = s f / ||f(theta_0)||, the norm frozen at init
        model = Scaled(model, config.output_norm / mean_output_norm(model, inputs))
    custom = is_import_path(config.arch)
    if custom:  # checked (shape, finite), and a warning when not O(1)
        output_power = check_initial_output(config.arch, model, inputs, data.num_classes)
    else:
        output_power = mean_output_power(model, inputs)
    tags = {tracking.MODEL_TAG: config.arch, tracking.MODEL_SOURCE_TAG: source_digest(config.arch)} if custom else {}
    adaptive = config.optimizer in ADAPTIVE_OPTIMIZERS
    second_moment = [g**2 for g in first_gradient(config, model, data, device)] if adaptive else None
    # lambda0 with the trajectory's estimator, so that lambda_t / lambda_0 compares like with like
    tol = config.sharpness_tol * LAMBDA0_TOL_FACTOR
    lambda0 = hessian.top_eigenvalue(
        model, LOSSES[config.loss], inputs, targets, method=config.sharpness_method, tol=tol,
        hvp_mode=config.hvp_mode, generator=torch.Generator(device).manual_seed(config.seed),
        preconditioner=None if second_moment is None else initial_preconditioner(second_moment, config.adam_eps),
    )  # fmt: skip
    if config.sharpness_method == "lanczos":
        warn_unconverged(lambda0, tol, f"for lambda0 (seed {config.seed})")
    eta_curvature = lambda0.value if config.eta_by == "sharpness" else first_update_curvature(config, model, data, device, second_moment)
    return Initialization(config, data, model, lambda0, device, eta_curvature, second_moment, output_power=output_power, tags=tags)


def gradient(model: torch.nn.Module, loss: str, inputs: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
    """The loss gradient at the model's parameters, per trainable parameter (zeros where unused)."""
    params = [p for _, p in hessian.trainable_parameters(model)]
    grads = torch.autograd.grad(LOSSES[loss](model(inputs), targets), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params)]


def first_batch(data: EarlyTrainingData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = next(iter(data.train_dataloader()))
    return inputs.to(device), targets.to(device)


def first_gradient(config: RunConfig, model: torch.nn.Module, data: EarlyTrainingData, device: torch.device) -> list[torch.Tensor]:
    """g0, the gradient of the first mini-batch at theta_0 (with adam's L2 term); its square is Adam's v0 with
    adam_v0=gradient, and with adam_v0=zero the v_hat_1 = g_1^2 that bias correction gives its first step."""
    grads = gradient(model, config.loss, *first_batch(data, device))
    if config.optimizer == "adam" and config.weight_decay:
        grads = [g + config.weight_decay * p.detach() for g, (_, p) in zip(grads, hessian.trainable_parameters(model))]
    return grads


def first_update_curvature(config: RunConfig, model: torch.nn.Module, data: EarlyTrainingData, device: torch.device,
                           second_moment: list[torch.Tensor] | None) -> float:  # fmt: skip
    """lambda_u = u.Hu / g.u on the measurement set, u the optimizer's first update at unit learning rate (theta_1 =
    theta_0 - eta u, on the first mini-batch): with eta = c / lambda_u the first step raises a quadratic loss iff c > 2."""
    probe = copy.deepcopy(model)
    params = [p for _, p in hessian.trainable_parameters(probe)]
    optimizer = build_optimizer(config, params, 1.0, second_moment)
    inputs, targets = first_batch(data, device)
    LOSSES[config.loss](probe(inputs), targets).backward()
    optimizer.step()
    update = torch.cat([(p0.detach() - p1.detach()).reshape(-1) for (_, p0), p1 in zip(hessian.trainable_parameters(model), params)])
    measured = data.measurement_set
    inputs, targets = measured[0].to(device), measured[1].to(device)
    slope = torch.cat([g.reshape(-1) for g in gradient(model, config.loss, inputs, targets)])
    operator = hessian.HessianOperator(model, LOSSES[config.loss], inputs, targets, mode=config.hvp_mode)
    value = update_curvature(operator, slope, update)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"eta_curvature='update' is not usable for seed {config.seed}: the {config.optimizer} first update "
                          f"does not lower the loss on the measurement set (lambda_u = {value:.4g}); use eta_curvature=sharpness")  # fmt: skip
    return value


def initial_preconditioner(second_moment: list[torch.Tensor], eps: float) -> torch.Tensor:
    """P_0 = sqrt(v_0) + eps, flat: the pre-conditioner of Adam's first step (either v0)."""
    return torch.cat([(v.sqrt() + eps).reshape(-1) for v in second_moment])


def loss_examples(init: Initialization) -> tuple[torch.Tensor, torch.Tensor]:
    """Where L_t is measured: the training set (the paper's), or with loss_set=measure the measurement set."""
    return init.data.measurement_set if init.config.loss_set == "measure" else init.data.training_set


def train(
    init: Initialization,
    c: float,
    *,
    sharpness: bool = True,
    sharpness_until: float | None = None,
    barrier: bool | None = None,
    full_barrier: bool = True,
    measure_at: Callable[[int], bool] | None = None,
) -> RunResult:
    """Train a copy of theta_0 for config.steps SGD steps at eta = c / init.eta_curvature (lambda0 unless
    config.eta_by is 'update'): the loss on the training set (or, with
    loss_set=measure, on the measurement set) on config.loss_schedule, the sharpness on the measurement set.

    `measure_at(t)`: the steps t >= 1 at which the sharpness is measured, instead of config.schedule.
    `full_barrier`: the whole interpolation curve (for figures); False: only until the barrier shows (`Barrier`).
    """
    config = init.config
    eta = c / init.eta_curvature
    loss_fn = LOSSES[config.loss]
    module = EarlyTraining(copy.deepcopy(init.model), loss_fn, eta, config, init.second_moment)
    steps_per_epoch = math.ceil(len(init.data.inputs) / init.data.batch_size)
    measurements = Measurements(
        init.data.measurement_set, loss_fn, init.lambda0, loss_set=loss_examples(init), sharpness=sharpness,
        schedule=measure_at or measure_schedule(config.schedule, steps_per_epoch),
        loss_schedule=measure_schedule(config.loss_schedule, steps_per_epoch), sharpness_until=sharpness_until,
        method="power" if config.sharpness_method == "power" else "lanczos", tol=config.sharpness_tol,
        hvp_mode=config.hvp_mode, seed=config.seed, label=f"c={c:.4g}, seed {config.seed}",
        preconditioned=init.second_moment is not None,
    )  # fmt: skip
    divergence = DivergenceStop(measurements)
    callbacks: list[L.Callback] = [measurements, divergence]
    wants_barrier = config.barrier if barrier is None else barrier
    if wants_barrier:
        callbacks.append(Barrier(measurements, divergence, init.initial_state, full_barrier))
    fit(init, module, callbacks)
    result = RunResult(
        c=c, eta=eta, history=measurements.history(eta), diverged=divergence.diverged, hvps=measurements.hvps,
        final_state={k: v.detach().cpu() for k, v in module.model.state_dict().items()},
        curvature=curvature_name(measurements.preconditioned),
    )  # fmt: skip
    if wants_barrier:
        result.barrier, result.barrier_curve, result.barrier_points = callbacks[-1].value, callbacks[-1].curve, callbacks[-1].points
    return result


def fit(init: Initialization, module: L.LightningModule, callbacks: list[L.Callback] | None = None) -> None:
    """config.steps SGD steps of `module` on init's training data, with Lightning's Trainer on init's device."""
    signals.raise_if_received()
    with warnings.catch_warnings():
        # The data are tensors in memory: worker processes would only add start-up time to a 10-step run.
        warnings.filterwarnings("ignore", ".*does not have many workers.*", PossibleUserWarning)
        # accelerator=cpu on a GPU machine is the user's choice (the GPU tests' CPU reference), not an oversight.
        warnings.filterwarnings("ignore", "GPU available but not used.*", PossibleUserWarning)
        # One process per run, also inside a SLURM job: Lightning's "srun is available but not used" hint (checked
        # on every fit where SLURM's commands are installed) is about multi-process jobs, which this is not.
        warnings.filterwarnings("ignore", "The `srun` command is available.*", PossibleUserWarning)
        trainer = L.Trainer(
            accelerator="gpu" if init.device.type == "cuda" else "cpu", devices=1, max_steps=init.config.steps,
            max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[*(callbacks or []), StopOnSignal()], num_sanity_val_steps=0,
            # Not SLURMEnvironment: its SIGUSR1 handler would save a checkpoint and requeue the job behind the
            # back of signals.py, which owns the signals (a SLURM task stops cleanly, then the launcher requeues).
            plugins=[LightningEnvironment()],
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=init.data.train_dataloader())


def log_result(run_id: str, init: Initialization, result: RunResult, checkpoints: bool) -> None:
    """Histories, run-level metrics and (optionally) theta_T as checkpoints/final.pt of one run."""
    tracking.log_history(run_id, result.history)
    log_initial_network(run_id, init)
    config = init.config
    threshold = {} if config.optimizer == "sgd" else {
        "stability_threshold": stability_threshold(config.optimizer, config.momentum, config.beta1)}  # fmt: skip
    tracking.log_metrics(run_id, {"lambda0": init.lambda0.value, "lambda0_residual": init.lambda0.residual,
                                  "eta_curvature": init.eta_curvature, **threshold, **result.summary()})  # fmt: skip
    if result.barrier_curve is not None:
        tracking.log_table(run_id, pd.DataFrame({"s": Barrier.GRID, "loss": result.barrier_curve}), "interpolation.csv")
    if checkpoints:
        tracking.log_tensors(run_id, {"final": result.final_state})


def log_inputs(run_id: str, init: Initialization, checkpoints: bool) -> None:
    """What every c of one (config, seed) shares, once: the dataset as an MLflow input and (optionally) theta_0 as
    checkpoints/initial.pt (a search's children point to their parent's by a tag)."""
    data, config = init.data, init.config
    hasher = hashlib.sha256()
    for tensor in (data.inputs, data.targets):
        hasher.update(memoryview(np.ascontiguousarray(tensor.numpy())).cast("B"))  # no copy of the data
    digest = hasher.hexdigest()[:16]
    profile = {"examples": len(data.inputs), "subset": config.subset, "measure_examples": len(data.measurement_index),
               "standardize": config.standardize}  # fmt: skip
    source = source_file(config.dataset) if is_user_data(config.dataset) else data_folder(config.data_dir)
    tracking.log_dataset(run_id, config.dataset, digest, str(source), profile)
    log_initial_network(run_id, init)
    if checkpoints:
        tracking.log_tensors(run_id, {"initial": {k: v.detach().cpu() for k, v in init.model.state_dict().items()}})


def log_initial_network(run_id: str, init: Initialization) -> None:
    """The network's output scale at theta_0 as metric init_output_sq, and which code made it (tags)."""
    tracking.log_metrics(run_id, {"init_output_sq": init.output_power})
    if init.tags:
        tracking.set_tags(run_id, init.tags)


def run_params(config: RunConfig) -> dict:
    """The MLflow params of a run: its config and the tolerance lambda0 was measured with."""
    return {**config.params(), "lambda0_tol": config.sharpness_tol * LAMBDA0_TOL_FACTOR}


def run_one(config: RunConfig, init: Initialization | None = None, parent_run_id: str | None = None, **plan) -> tuple[str, RunResult]:
    """Train and log one tracked run; `plan` (sharpness, sharpness_until, barrier) is what the search asks for."""
    init = init or initialize(config)
    with tracking.run(config.experiment, "run", run_params(config), parent_run_id=parent_run_id, run_name=f"c={config.c:.4g}") as run_id:
        log_inputs(run_id, init, config.log_checkpoints)
        result = train(init, config.c, **plan)
        log_result(run_id, init, result, config.log_checkpoints)
    return run_id, result
