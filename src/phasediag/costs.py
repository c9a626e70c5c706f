"""Where the time of one search goes. Each kind of computation a search repeats is timed on the search's own
initialisation, with its matrix-product and convolution FLOPs counted by torch's FlopCounterMode, and multiplied
by how often the finished search did it (read from its child runs). What the products leave of the search's wall
is the per-run rest: Lightning, MLflow, Optuna, the Lanczos bookkeeping and Python. Used by `make bench` (section F,
CPU) and `make gpu-check` (GPU)."""

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from phasediag import tracking
from phasediag.physics import hessian
from phasediag.physics.losses import LOSSES
from phasediag.run import runner
from phasediag.run.callbacks import Barrier, evaluate, interpolated_losses

KINDS = {  # what a search repeats, in the words of the breakdown table
    "sgd_step": "SGD steps (forward and backward on one batch)",
    "loss_evaluation": "loss evaluations on the loss set (L_t at every step)",
    "sharpness": "sharpness measurements: the Hessian operator built (gradient graph on the measurement set)",
    "hvp": "Hessian-vector products on the measurement set",
    "barrier": f"barriers ({len(Barrier.GRID)} loss evaluations from theta_0 to theta_T)",
}


@dataclass(frozen=True)
class Cost:
    seconds: float  # median wall of one
    flops: float  # matrix-product and convolution FLOPs of one (elementwise work is not counted)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(seconds, result) of one call, synchronising the device around it."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def measure(fn: Callable[[], object], device: torch.device, rounds: int = 3) -> Cost:
    """Count the FLOPs of one call (which also warms up), then the median wall of `rounds` more."""
    with FlopCounterMode(display=False) as counter:
        fn()
    walls = [timed(fn, device)[0] for _ in range(rounds)]
    return Cost(statistics.median(walls), float(counter.get_total_flops()))


def unit_costs(init: runner.Initialization, rounds: int = 3) -> dict[str, Cost]:
    """One of each of KINDS, at theta_0 of `init` (the cost of a product does not depend on where it is taken)."""
    model = copy.deepcopy(init.model)
    loss_fn = LOSSES[init.config.loss]
    device = init.device
    batch_inputs, batch_targets = (t.to(device) for t in next(iter(init.data.train_dataloader())))
    loss_inputs, loss_targets = (t.to(device) for t in runner.loss_examples(init))
    measure_inputs, measure_targets = (t.to(device) for t in init.data.measurement_set)
    op = hessian.HessianOperator(model, loss_fn, measure_inputs, measure_targets, mode=init.config.hvp_mode)
    vector = torch.randn(op.dim, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=op.dtype)

    def sgd_step() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(batch_inputs), batch_targets).backward()

    jobs = {
        "sgd_step": sgd_step,
        "loss_evaluation": lambda: evaluate(model, loss_fn, loss_inputs, loss_targets),
        "sharpness": lambda: hessian.HessianOperator(model, loss_fn, measure_inputs, measure_targets, mode=init.config.hvp_mode),
        "hvp": lambda: op(vector),
        "barrier": lambda: interpolated_losses(model, init.initial_state, loss_fn, loss_inputs, loss_targets, Barrier.GRID),
    }
    # One barrier is ~100 loss evaluations: a single timed round is enough.
    return {kind: measure(job, device, 1 if kind == "barrier" else rounds) for kind, job in jobs.items()}


def search_counts(experiment: str, parent_run_id: str, lambda0_hvps: int) -> dict[str, int]:
    """How many of each of KINDS a finished search did, from its child runs (and the HVPs of its lambda0)."""
    children = tracking.runs(experiment, parent_run_id=parent_run_id)
    histories = tracking.histories(children["run_id"], ("loss", "sharpness"))
    evaluations = histories[histories["metric"] == "loss"].groupby("run_id").size()  # steps 0 .. T of each run
    sharpness = histories[(histories["metric"] == "sharpness") & (histories["step"] > 0)]  # step 0 is lambda0
    measured = children["barrier"].notna() & (children["barrier"] < 1e300) if "barrier" in children else pd.Series(False)
    return {
        "runs": len(children),
        "sgd_step": int((evaluations - 1).sum()),
        "loss_evaluation": int(evaluations.sum()),
        "sharpness": len(sharpness) + 1,  # and lambda0
        "hvp": int(children["hvps"].sum()) + lambda0_hvps,
        "barrier": int(measured.sum()),  # a diverged run's barrier is inf without an evaluation
    }


def breakdown(costs: dict[str, Cost], counts: dict[str, int], wall: float) -> list[list[str]]:
    """Rows of (what, count, one, all, share of the wall, GFLOP, GFLOP/s), then the rest per run, for `bench.table`."""
    rows, spent = [], 0.0
    for kind, words in KINDS.items():
        cost, count = costs[kind], counts[kind]
        total = cost.seconds * count
        spent += total
        rows.append([words, count, f"{cost.seconds * 1e3:.2f} ms", f"{total:.1f} s", f"{total / wall:.0%}",
                     f"{cost.flops * count / 1e9:,.0f}", f"{cost.flops / cost.seconds / 1e9:,.0f}"])  # fmt: skip
    rest = wall - spent
    rows.append([f"the rest (Lightning, MLflow, Optuna, Lanczos, Python), per run of {counts['runs']}", counts["runs"],
                 f"{rest / counts['runs'] * 1e3:.0f} ms", f"{rest:.1f} s", f"{rest / wall:.0%}", "", ""])  # fmt: skip
    return rows


HEADER = ["what", "count", "one", "all", "share of the wall", "GFLOP", "GFLOP/s"]
