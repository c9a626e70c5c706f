"""Lightning callbacks: the loss at every step, the sharpness on the measurement set on a schedule, divergence stop,
loss barrier."""

import copy
import math
import warnings
from collections import deque
from collections.abc import Callable

import lightning as L
import numpy as np
import pandas as pd
import torch

from phasediag import signals
from phasediag.models import stem_and_head
from phasediag.physics import hessian
from phasediag.physics.critical import DIVERGENCE_LOSS
from phasediag.physics.losses import LossFn

T1 = 10  # the early transient: sharpness at every step up to here
EVAL_CHUNK = 8192  # examples per forward pass when evaluating the loss on a large set


class LanczosNotConverged(RuntimeWarning):
    """A Lanczos solve stopped at its iteration cap with its residual above the tolerance."""


def measure_schedule(kind: str, steps_per_epoch: int) -> Callable[[int], bool]:
    """When to measure the sharpness (or L_t). 'every_step'; 'paper' (App. A.3): every step up to T1 and of the
    first epoch, every epoch from 10 to 100, every 10 epochs beyond; for L_t, 'with_sharpness': no step of its own."""
    if kind == "every_step":
        return lambda t: True
    if kind == "with_sharpness":
        return lambda t: False

    def paper(t: int) -> bool:
        epoch, within = divmod(t, steps_per_epoch)
        return t <= max(T1, steps_per_epoch) or (within == 0 and (10 <= epoch <= 100 or epoch % 10 == 0))

    return paper


@torch.no_grad()
def evaluate(model: torch.nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """Loss and accuracy on a fixed set, in chunks of EVAL_CHUNK examples (both losses are means over examples)."""
    loss, correct = 0.0, 0.0
    for start in range(0, len(inputs), EVAL_CHUNK):
        x, y = inputs[start : start + EVAL_CHUNK], targets[start : start + EVAL_CHUNK]
        outputs = model(x)
        loss += loss_fn(outputs, y).item() * len(x)
        correct += (outputs.argmax(1) == y.argmax(1)).sum().item()
    accuracy = correct / len(inputs) if targets.shape[1] > 1 else float("nan")
    return loss / len(inputs), accuracy


def warn_unconverged(eigen: hessian.Eigen, tol: float, where: str) -> bool:
    """Warn (LanczosNotConverged) when a Lanczos solve ended with its residual above tol; True if it did."""
    if not eigen.residual > tol:  # met, or NaN (a diverged run: not a convergence problem)
        return False
    warnings.warn(f"Lanczos stopped at its iteration cap with residual {eigen.residual:.3g} > tol {tol:.3g} {where}",
                  LanczosNotConverged, stacklevel=2)  # fmt: skip
    return True


class Measurements(L.Callback):
    """Loss and accuracy on the loss set (the training set, as the paper plots L_t) on `loss_schedule` (default
    every step), at every sharpness measurement and at the last step; sharpness on the measurement set on
    `schedule`, warm-started Lanczos, with its residual; the mini-batch loss at every step.

    `sharpness_until`: stop measuring the sharpness once round(lambda_t / lambda_0, 2) > sharpness_until
    (the search only needs to know whether it increased).
    `preconditioned`: measure lambda_max(P_t^-1 H_t) instead, P_t the trainer's optimizer's `preconditioner()` (Adam),
    logged as preconditioned_sharpness (lambda0 must be the pre-conditioned one too).
    """

    def __init__(
        self,
        measurement_set: tuple[torch.Tensor, torch.Tensor],
        loss_fn: LossFn,
        lambda0: hessian.Eigen,
        *,
        loss_set: tuple[torch.Tensor, torch.Tensor] | None = None,
        sharpness: bool = True,
        schedule: Callable[[int], bool] = lambda t: True,
        loss_schedule: Callable[[int], bool] = lambda t: True,
        sharpness_until: float | None = None,
        method: str = "lanczos",
        tol: float = 1e-3,
        hvp_mode: str = "cached",
        seed: int = 0,
        label: str = "",
        preconditioned: bool = False,
    ) -> None:
        self.inputs, self.targets = measurement_set
        self.loss_inputs, self.loss_targets = measurement_set if loss_set is None else loss_set
        self.loss_fn = loss_fn
        self.lambda0 = lambda0
        self.sharpness = sharpness
        self.schedule, self.loss_schedule = schedule, loss_schedule
        self.sharpness_until = sharpness_until
        self.method, self.tol, self.hvp_mode = method, tol, hvp_mode
        self.generator_seed = seed
        self.rows: list[dict[str, float]] = []
        self.hvps = 0
        self.vector = lambda0.vector
        self.label = label  # names the run in the warning
        self.preconditioned = preconditioned
        self.warned = False  # one LanczosNotConverged per run

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.inputs, self.targets = self.inputs.to(module.device), self.targets.to(module.device)
        self.loss_inputs, self.loss_targets = self.loss_inputs.to(module.device), self.loss_targets.to(module.device)
        self.vector = self.vector.to(module.device)
        self._record(module, 0, self.lambda0.value)
        self.rows[-1]["sharpness_residual"] = self.lambda0.residual

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        t = trainer.global_step
        wants_sharpness = self.sharpness and self.schedule(t)
        if not (wants_sharpness or self.loss_schedule(t) or t == trainer.max_steps):
            self.rows.append({"step": t, "sharpness": None, "batch_loss": module.batch_losses[-1]})
            return
        loss = self._record(module, t, None)
        if wants_sharpness and math.isfinite(loss) and loss < DIVERGENCE_LOSS:
            self.rows[-1]["sharpness"], self.rows[-1]["sharpness_residual"] = self._sharpness(trainer, module, t)

    def _record(self, module: L.LightningModule, t: int, sharpness: float | None) -> float:
        loss, accuracy = evaluate(module.model, self.loss_fn, self.loss_inputs, self.loss_targets)
        row = {"step": t, "loss": loss, "accuracy": accuracy, "sharpness": sharpness}
        if t >= 1:
            row["batch_loss"] = module.batch_losses[-1]
        self.rows.append(row)
        return loss

    def _sharpness(self, trainer: L.Trainer, module: L.LightningModule, t: int) -> tuple[float, float]:
        generator = torch.Generator(module.device).manual_seed(self.generator_seed + len(self.rows))
        with torch.enable_grad():
            eigen = hessian.top_eigenvalue(
                module.model, self.loss_fn, self.inputs, self.targets,
                method=self.method, tol=self.tol, v0=self.vector if self.method == "lanczos" else None,
                hvp_mode=self.hvp_mode, generator=generator,
                preconditioner=trainer.optimizers[0].preconditioner() if self.preconditioned else None,
            )  # fmt: skip
        self.hvps += eigen.hvps
        if self.method == "lanczos" and not self.warned:
            where = f"at step {t} of the run {self.label}; warned once per run, every residual is in sharpness_residual"
            self.warned = warn_unconverged(eigen, self.tol, where)
        if math.isfinite(eigen.value):
            self.vector = eigen.vector
        ratio = eigen.value / self.lambda0.value
        if self.sharpness_until is not None and np.round(ratio, 2) > self.sharpness_until:
            self.sharpness = False  # the answer is known: it increased
        return eigen.value, eigen.residual

    @property
    def last_loss(self) -> float:
        """L_t at the last step; where loss_schedule skipped it, that step's mini-batch loss (a divergence shows in
        both, one step later in the mini-batch loss)."""
        row = self.rows[-1]
        return row["loss"] if "loss" in row else row["batch_loss"]

    def history(self, eta: float) -> pd.DataFrame:
        """One row per step t (index), with ratios to t = 0 and eta * sharpness (compare with 2); pre-conditioned:
        every sharpness column named preconditioned_sharpness instead (`curvature_name`)."""
        frame = pd.DataFrame(self.rows).set_index("step").astype(float)
        frame["loss_ratio"] = frame["loss"] / frame["loss"].iloc[0]
        frame["sharpness_ratio"] = frame["sharpness"] / self.lambda0.value
        frame["eta_sharpness"] = eta * frame["sharpness"]
        name = curvature_name(self.preconditioned)
        return frame.rename(columns=lambda column: column.replace("sharpness", name))


def curvature_name(preconditioned: bool) -> str:
    """The history's name of the curvature that sets the optimizer's stability (and Defs. 1-3's lambda_t)."""
    return "preconditioned_sharpness" if preconditioned else "sharpness"


class StopOnSignal(L.Callback):
    """SIGTERM / SIGINT stop the run at the next step even when their exception was lost in a finalizer."""

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        signals.raise_if_received()


class DivergenceStop(L.Callback):
    """Stop as soon as L_t (Measurements.last_loss) >= K or is not finite: a diverged run is a result, not a crash."""

    def __init__(self, measurements: Measurements, bound: float = DIVERGENCE_LOSS) -> None:
        self.measurements = measurements
        self.bound = bound
        self.diverged = False

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loss = self.measurements.last_loss
        if not math.isfinite(loss) or loss >= self.bound:
            self.diverged = True
            trainer.should_stop = True


def coarse_to_fine(n: int) -> list[int]:
    """0, n - 1, then the midpoints of ever finer halvings of [0, n - 1]: every index once, so that a barrier of any
    width is met after about (n - 1) / width evaluations."""
    if n < 2:
        return list(range(n))
    order, intervals = [0, n - 1], deque([(0, n - 1)])
    while intervals:
        a, b = intervals.popleft()
        if b - a >= 2:
            middle = (a + b) // 2
            order.append(middle)
            intervals += [(a, middle), (middle, b)]
    return order


def interpolated_losses(
    model: torch.nn.Module, start: dict[str, torch.Tensor], loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
    grid: np.ndarray, stop_at_barrier: bool = False,
) -> np.ndarray:  # fmt: skip
    """L((1 - s) theta_0 + s theta_T) for s in grid, theta_T = the model's current parameters (Def. 2), L the mean
    over chunks of EVAL_CHUNK examples as in `evaluate`. Where the first layer is affine in its parameters (the FCN),
    its output along the path is the same interpolation of its outputs at the two ends: it is computed twice rather
    than once per s, and on image inputs it is most of an FCN's FLOPs.

    stop_at_barrier: grid[0] first, then the others coarse to fine (`coarse_to_fine`), stopping at the first whose
    loss exceeds it, or is not a number (a barrier: the answer is known); the points not evaluated are -inf. Each
    point's loss is the one a full curve has there, so the barrier answer is the full curve's."""
    end = {name: p.detach().clone() for name, p in model.named_parameters()}
    probe = copy.deepcopy(model).to(inputs.device)  # after Trainer.fit the model may be back on the CPU, the data not
    chunks = list(zip(inputs.split(EVAL_CHUNK), targets.split(EVAL_CHUNK)))

    def place(s: float) -> None:
        for name, p in probe.named_parameters():
            p.copy_(torch.lerp(start[name].to(p.device), end[name].to(p.device), s))

    split = stem_and_head(probe)
    with torch.no_grad():
        if split is not None:
            stem, head = split
            place(0.0)
            first = [stem(x) for x, _ in chunks]
            place(1.0)
            last = [stem(x) for x, _ in chunks]

        def loss_at(i: int) -> float:
            s = float(grid[i])
            place(s)
            if split is None:
                return evaluate(probe, loss_fn, inputs, targets)[0]
            return sum(loss_fn(head(torch.lerp(a, b, s)), y).item() * len(y) for a, b, (_, y) in zip(first, last, chunks)) / len(inputs)

        return along_path(loss_at, len(grid), stop_at_barrier)


def along_path(loss_at: Callable[[int], float], n: int, stop_at_barrier: bool = False) -> np.ndarray:
    """loss_at(i) for i < n, in order; with stop_at_barrier coarse to fine from i = 0, stopping after the first loss
    above loss_at(0) or not a number, the others -inf (`interpolated_losses`)."""
    losses = np.full(n, -np.inf)
    for i in coarse_to_fine(n) if stop_at_barrier else range(n):
        losses[i] = loss_at(i)
        if stop_at_barrier and not losses[i] <= losses[0]:
            break
    return losses


class Barrier(L.Callback):
    """U(c) = max_s L((1-s) theta_0 + s theta_T1) - L(theta_0), s in {0, 0.01, ..., 1} (Def. 2), L on the loss set
    like L_t; inf if diverged.

    full_curve=False (a search's trial, which only needs to know whether U > 0): the points are evaluated coarse to
    fine and stop at the first above L(theta_0); `value` is then that point's excess, a lower bound of U that is > 0
    exactly when U is, `curve` is None, and `points` says how many were evaluated."""

    GRID = np.linspace(0.0, 1.0, 101)

    def __init__(
        self, measurements: Measurements, divergence: DivergenceStop, initial: dict[str, torch.Tensor], full_curve: bool = True
    ) -> None:  # fmt: skip
        self.measurements = measurements
        self.divergence = divergence
        self.initial = initial
        self.full_curve = full_curve
        self.value: float | None = None
        self.curve: np.ndarray | None = None
        self.points = 0

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.divergence.diverged:
            self.value = math.inf
            return
        self.value, self.curve, self.points = barrier_from(module.model, self.initial, self.measurements, self.full_curve)


def barrier_from(
    model: torch.nn.Module, initial: dict[str, torch.Tensor], measurements: Measurements, full_curve: bool
) -> tuple[float, np.ndarray | None, int]:  # fmt: skip
    """(U or, without the full curve, its lower bound; the curve, or None; the points evaluated) from theta_0 to the
    model's parameters, on the measurements' loss set."""
    m = measurements
    curve = interpolated_losses(model, initial, m.loss_fn, m.loss_inputs, m.loss_targets, Barrier.GRID, stop_at_barrier=not full_curve)
    return float(np.max(curve) - curve[0]), curve if full_curve else None, int(np.count_nonzero(curve != -np.inf))
