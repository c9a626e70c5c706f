"""K values of c of one (config, seed) trained as one model: K copies of theta_0 stacked on a leading dimension,
the same batches, eta_k = c_k / lambda0. Each copy gets the record a sequential `runner.train` would give it
(loss history, warm-started sharpness, divergence, barrier), so each is logged as the same child run."""

import copy
import math
from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch.func import vmap

from phasediag import tracking
from phasediag.physics import batched
from phasediag.physics.critical import DIVERGENCE_LOSS
from phasediag.physics.losses import LOSSES
from phasediag.run import runner
from phasediag.run.callbacks import Measurements, barrier_from, evaluate, measure_schedule
from phasediag.run.config import RunConfig


class BatchedTraining(L.LightningModule):
    """Plain SGD on K stacked copies (manual optimisation: one SGD step at lr 1 on the gradients scaled by eta_k).
    A copy whose loss on the measurement set reaches K or is not finite stops updating and keeps its record;
    training stops when every copy has diverged. `records[k]` holds copy k's rows, warm-start vector and HVP count."""

    def __init__(self, init: runner.Initialization, etas: Sequence[float], records: list[Measurements]) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = copy.deepcopy(init.model)  # shared architecture and buffers; its own parameters are unused
        self.loss_fn = LOSSES[init.config.loss]
        stacked = batched.stack(init.model, len(etas))
        self.names = list(stacked)
        self.stacked = torch.nn.ParameterList(stacked.values())
        self.register_buffer("etas", torch.tensor(etas, dtype=self.stacked[0].dtype))
        self.records = records
        self.diverged = [False] * len(etas)
        self.t = 0

    @property
    def params(self) -> batched.Stacked:
        return dict(zip(self.names, self.stacked))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.stacked.parameters(), lr=1.0, momentum=0.0)

    def on_train_start(self) -> None:
        first = self.records[0]
        first.loss_inputs, first.loss_targets = first.loss_inputs.to(self.device), first.loss_targets.to(self.device)
        loss, accuracy = evaluate(self.model, self.loss_fn, first.loss_inputs, first.loss_targets)
        for record in self.records:  # theta_0 is shared: one evaluation
            record.inputs, record.targets = record.inputs.to(self.device), record.targets.to(self.device)
            record.loss_inputs, record.loss_targets = first.loss_inputs, first.loss_targets
            record.vector = record.vector.to(self.device)
            record.rows.append({"step": 0, "loss": loss, "accuracy": accuracy, "sharpness": record.lambda0.value,
                                "sharpness_residual": record.lambda0.residual})  # fmt: skip

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        live = torch.tensor([k for k, gone in enumerate(self.diverged) if not gone], device=self.device)
        batch_losses = batched.losses(self.model, self.loss_fn, {n: p[live] for n, p in self.params.items()}, inputs, targets)
        grads = torch.autograd.grad(batch_losses.sum(), list(self.stacked))
        scale = torch.zeros_like(self.etas).index_copy_(0, live, self.etas[live])  # diverged copies stay put
        for p, g in zip(self.stacked, grads):
            p.grad = g * scale.view(-1, *([1] * (g.dim() - 1)))
        self.optimizers().step()
        self.t += 1
        self._measure(live.tolist(), batch_losses.detach().tolist())
        if all(self.diverged):
            self.trainer.should_stop = True

    @torch.no_grad()
    def _measure(self, live: list[int], batch_losses: list[float]) -> None:
        """Loss and accuracy of the live copies on the measurement set; sharpness where scheduled and wanted."""
        first = self.records[0]
        params = {n: p[live] for n, p in self.params.items()}
        out = batched.outputs(self.model, params, first.loss_inputs)
        values = vmap(self.loss_fn, in_dims=(0, None))(out, first.loss_targets).tolist()
        if first.loss_targets.shape[1] > 1:
            accuracies = (out.argmax(2) == first.loss_targets.argmax(1)).float().mean(1).tolist()
        else:
            accuracies = [math.nan] * len(live)
        wanted = []
        for k, loss, accuracy, batch_loss in zip(live, values, accuracies, batch_losses):
            record = self.records[k]
            record.rows.append({"step": self.t, "loss": loss, "accuracy": accuracy, "sharpness": None, "batch_loss": batch_loss})
            finite = math.isfinite(loss) and loss < DIVERGENCE_LOSS
            self.diverged[k] = not finite
            if finite and record.sharpness and record.schedule(self.t):
                wanted.append(k)
        if wanted:
            self._sharpness(wanted)

    def _sharpness(self, copies: list[int]) -> None:
        """Warm-started Lanczos on every wanted copy at once, with the sequential run's seeds and tolerance."""
        records = [self.records[k] for k in copies]
        first = records[0]
        op = batched.BatchedHessian(self.model, self.loss_fn, first.inputs, first.targets, self.params)
        generators = [torch.Generator(self.device).manual_seed(r.generator_seed + len(r.rows)) for r in records]
        start = batched.start_vectors(op, [r.vector for r in records], generators)
        index = torch.tensor(copies, device=self.device)
        for record, eigen in zip(records, batched.lanczos(op, index, start, tol=first.tol)):
            record.hvps += eigen.hvps
            if math.isfinite(eigen.value):
                record.vector = eigen.vector
            record.rows[-1]["sharpness"], record.rows[-1]["sharpness_residual"] = eigen.value, eigen.residual
            if record.sharpness_until is not None and round(eigen.value / record.lambda0.value, 2) > record.sharpness_until:
                record.sharpness = False  # the answer is known: it increased

    def copy_model(self, k: int) -> torch.nn.Module:
        """The shared model holding copy k's parameters (overwritten by the next call)."""
        with torch.no_grad():
            for name, p in self.params.items():
                self.model.get_parameter(name).copy_(p[k])
        return self.model


def train_batched(
    init: runner.Initialization,
    cs: Sequence[float],
    *,
    sharpness: bool | Sequence[bool] = True,
    sharpness_until: float | None = None,
    barrier: bool | Sequence[bool] | None = None,
    full_barrier: bool = True,
    measure_at: Callable[[int], bool] | None = None,
) -> list[runner.RunResult]:
    """`runner.train` at every c of `cs` at once; `sharpness` and `barrier` may differ per c."""
    config = init.config
    if config.sharpness_method != "lanczos":
        raise ValueError(f"sharpness_method={config.sharpness_method!r}: batched runs measure with lanczos only")
    if config.loss_schedule != "every_step":
        raise ValueError(f"loss_schedule={config.loss_schedule!r}: batched runs (searches) measure L_t at every step")
    count = len(cs)
    wants_sharpness = [sharpness] * count if isinstance(sharpness, bool) else list(sharpness)
    default = config.barrier if barrier is None else barrier
    wants_barrier = [default] * count if isinstance(default, bool) else list(default)
    steps_per_epoch = math.ceil(len(init.data.inputs) / init.data.batch_size)
    schedule = measure_at or measure_schedule(config.schedule, steps_per_epoch)
    records = [
        Measurements(
            init.data.measurement_set, LOSSES[config.loss], init.lambda0, loss_set=runner.loss_examples(init), sharpness=wanted, schedule=schedule,
            sharpness_until=sharpness_until, tol=config.sharpness_tol, seed=config.seed,
        )  # fmt: skip
        for wanted in wants_sharpness
    ]
    etas = [c / init.eta_curvature for c in cs]
    module = BatchedTraining(init, etas, records)
    runner.fit(init, module)
    results = []
    for k, (c, eta, record) in enumerate(zip(cs, etas, records)):
        model = module.copy_model(k)
        result = runner.RunResult(
            c=c, eta=eta, history=record.history(eta), diverged=module.diverged[k], hvps=record.hvps,
            final_state={name: v.detach().cpu().clone() for name, v in model.state_dict().items()},
        )  # fmt: skip
        if wants_barrier[k] and module.diverged[k]:
            result.barrier = math.inf
        elif wants_barrier[k]:
            result.barrier, result.barrier_curve, result.barrier_points = barrier_from(model, init.initial_state, record, full_barrier)
        results.append(result)
    return results


def log_run(
    config: RunConfig, init: runner.Initialization, result: runner.RunResult, parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """One finished copy as the child run a sequential run at config.c logs (same params, metrics, artifacts)."""
    with tracking.run(config.experiment, "run", runner.run_params(config), parent_run_id=parent_run_id, run_name=f"c={config.c:.4g}", tags=tags) as run_id:
        runner.log_result(run_id, init, result, config.log_checkpoints)
    return run_id


MAX_BATCH_C = 32  # beyond this a search has no use for more points per round
MEMORY_SHARE = 0.5  # of the free device memory: the rest is headroom for the allocator and the measurement set
# A search's default K on CUDA. With K points per round a bisection needs 1/3 to 1/4 of the rounds at K = 4 for about
# the runs of the sequential search, but 2 to 3 times the runs at K = 16-32 (`make bench`, section G), and a round of
# a large network costs nearly K runs (GPU check, 2026-11-29: 38 runs at K = 32, 2.4x from K = 16).
SEARCH_BATCH_C = 4


def bytes_per_copy(init: runner.Initialization) -> int:
    """Device memory one more copy needs, estimated: its parameters, gradient and 30-vector Lanczos basis, plus the
    activations of one Hessian-vector product on the measurement set (forward, tangent, backward, tangent-of-backward:
    four times those of a forward pass, counted with hooks on one example)."""
    counted = []
    leaves = [m for m in init.model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, out: counted.append(out.numel())) for m in leaves]
    inputs, _ = init.data.measurement_set
    with torch.no_grad():
        init.model(inputs[:1].to(init.device))
    for hook in hooks:
        hook.remove()
    parameters = sum(p.numel() for p in init.model.parameters())
    itemsize = next(init.model.parameters()).element_size()
    return itemsize * (parameters * (30 + 4) + 4 * sum(counted) * len(inputs))


def copies_that_fit(init: runner.Initialization) -> int:
    """How many copies fit in MEMORY_SHARE of the free CUDA memory by `bytes_per_copy`, at most MAX_BATCH_C."""
    free, _ = torch.cuda.mem_get_info(init.device)
    return int(max(1, min(MAX_BATCH_C, MEMORY_SHARE * free // bytes_per_copy(init))))


def auto_batch_c(init: runner.Initialization) -> int:
    """A search's default K: 1 on CPU (vmap gives no speed-up there); on CUDA SEARCH_BATCH_C, fewer if they do not
    fit (`copies_that_fit`)."""
    if init.device.type != "cuda":
        return 1
    return min(SEARCH_BATCH_C, copies_that_fit(init))
