"""What the computations of a search cost, measured and estimated.

Measured (`make bench` section F on CPU, `make gpu-check` on a GPU): each kind of computation a search repeats is
timed on the search's own initialisation, with its matrix-product and convolution FLOPs counted by torch's
FlopCounterMode, and multiplied by how often the finished search did it (read from its child runs). What the
products leave of the search's wall is the rest: Lightning, MLflow, Optuna, the Lanczos bookkeeping and Python.

Estimated (`analysis/estimate_costs.py`, the README's figure table): the same kinds of work, counted for a command
that has not run (a search from the averages of measured ones), times the model's FLOPs per example.
"""

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from phasediag import tracking
from phasediag.models import build_model
from phasediag.physics import hessian
from phasediag.physics.losses import LOSSES
from phasediag.run import runner
from phasediag.run.callbacks import Barrier, evaluate, interpolated_losses, measure_schedule
from phasediag.reports.config import SaturationConfig
from phasediag.run.config import RunConfig
from phasediag.search.config import SearchConfig

KINDS = {  # what a search repeats, in the words of the breakdown table
    "sgd_step": "SGD steps (forward and backward on one batch)",
    "loss_evaluation": "loss evaluations on the loss set (L_t at every step)",
    "sharpness": "sharpness measurements: the Hessian operator built (gradient graph on the measurement set)",
    "hvp": "Hessian-vector products on the measurement set",
    "barrier": f"barriers, in full ones (the loss at {len(Barrier.GRID)} points from theta_0 to theta_T)",
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
        "barrier": barriers(children, measured),  # a diverged run's barrier is inf without an evaluation
    }


def barriers(children: pd.DataFrame, measured: pd.Series) -> float:
    """The barriers evaluated, in full ones: a search's trial stops at the first point above L(theta_0)
    (barrier_points); a run logged before that metric existed evaluated every point."""
    if not measured.any():
        return 0.0
    points = children["barrier_points"] if "barrier_points" in children else pd.Series(float("nan"), index=children.index)
    return float(points[measured].fillna(len(Barrier.GRID)).sum() / len(Barrier.GRID))


def breakdown(units: dict[str, Cost], counts: dict[str, int], wall: float) -> list[list[str]]:
    """Rows of (what, count, one, all, share of the wall, GFLOP, GFLOP/s), then the rest per run, for `bench.table`."""
    rows, spent = [], 0.0
    for kind, words in KINDS.items():
        cost, count = units[kind], counts[kind]
        total = cost.seconds * count
        spent += total
        rows.append([words, round(count, 1), f"{cost.seconds * 1e3:.2f} ms", f"{total:.1f} s", f"{total / wall:.0%}",
                     f"{cost.flops * count / 1e9:,.0f}", f"{cost.flops / cost.seconds / 1e9:,.0f}"])  # fmt: skip
    rest = wall - spent
    rows.append([f"the rest (Lightning, MLflow, Optuna, Lanczos, Python), per run of {counts['runs']}", counts["runs"],
                 f"{rest / counts['runs'] * 1e3:.0f} ms", f"{rest:.1f} s", f"{rest / wall:.0%}", "", ""])  # fmt: skip
    return rows


HEADER = ["what", "count", "one", "all", "share of the wall", "GFLOP", "GFLOP/s"]


# --------------------------------------------------------------------------------------------- estimates

# What one search does (KINDS), on average: bisection from bench F (10 runs, 6 barriers, 242 HVPs, 42 sharpness
# measurements) and a profiled FCN d=4 w=256 search (14, 8, 249, 42), both on the full Fashion-MNIST; the grid from
# benchmark C's scans (46.5 runs, a barrier at each point below the divergence, 2734 HVPs, sharpness at every step).
PER_SEARCH = {
    "bisect": {"runs": 12.0, "barrier": 7.0, "hvp": 250.0, "sharpness": 42.0},
    "grid": {"runs": 46.5, "barrier": 45.5, "hvp": 2734.0, "sharpness": 465.0},
}
DATASETS = {"mnist": ((1, 28, 28), 60_000), "fashion_mnist": ((1, 28, 28), 60_000), "cifar10": ((3, 32, 32), 50_000)}
HVPS_PER_MEASUREMENT = 5  # a warm-started Lanczos solve (bench E: 205 products for 40 measurements)
CPU_REST_S = 0.1  # per run, bench F
GPU_FLOP_S, GPU_REST_S = 20e12, 0.35  # one H200 in fp32: the batched FCN evaluation reached 23-41 TFLOP/s (README)


def _model(run: RunConfig) -> torch.nn.Module:
    """`run`'s model at the shape of its dataset (10 classes)."""
    return build_model(run.arch, run.depth, run.width, param=run.param, in_shape=DATASETS[run.dataset][0], num_classes=10,
                       seed=0, bias=run.bias, output=run.output, output_scale=run.output_scale, output_sigma=run.output_sigma)  # fmt: skip


def flops_per_example(run: RunConfig) -> dict[str, float]:
    """Matrix-product FLOPs per example of a forward pass, an SGD step, a sharpness measurement's cached Hessian
    operator (its build), one of its products and a barrier, counted on 4 random examples of the dataset's shape."""
    model, loss_fn = _model(run), LOSSES[run.loss]
    inputs, targets = torch.randn(4, *DATASETS[run.dataset][0]), torch.eye(10)[:4]
    counted = {}

    def count(name: str, fn: Callable[[], object]) -> object:
        with FlopCounterMode(display=False) as counter:
            out = fn()
        counted[name] = counter.get_total_flops() / len(inputs)
        return out

    with torch.no_grad():
        count("forward", lambda: model(inputs))
    count("sgd_step", lambda: loss_fn(model(inputs), targets).backward())
    op = count("sharpness", lambda: hessian.HessianOperator(model, loss_fn, inputs, targets))
    count("hvp", lambda: op(torch.randn(op.dim)))
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    count("barrier", lambda: interpolated_losses(model, start, loss_fn, inputs, targets, Barrier.GRID))
    return counted


def cpu_flop_rate(run: RunConfig, per_example: dict[str, float], work: float = 5e10) -> float:
    """FLOP/s of this machine on the model's forward pass (what most of the work is): best of 2 passes over as many
    examples as make about `work` FLOPs (8 to 512)."""
    model = _model(run)
    examples = int(min(512, max(8, work // per_example["forward"])))
    inputs = torch.randn(examples, *DATASETS[run.dataset][0])
    with torch.no_grad():
        seconds = min(timed(lambda: model(inputs), torch.device("cpu"))[0] for _ in range(2))
    return per_example["forward"] * examples / seconds


def _estimate(run: RunConfig, per_example: dict[str, float], cpu_rate: float, *, evaluations: float, steps: float,
              measurements: float, hvps: float, runs: float, barriers: float = 0.0) -> dict[str, float]:
    """FLOPs and seconds (CPU here, one H200) of that much work on `run`'s model and data."""
    n = run.subset or DATASETS[run.dataset][1]
    loss_set = min(run.measure_size, n) if run.loss_set == "measure" else n
    batch, m = run.batch_size or n, min(run.measure_size, n)
    flops = (loss_set * (evaluations * per_example["forward"] + barriers * per_example["barrier"])
             + steps * batch * per_example["sgd_step"] + measurements * m * per_example["sharpness"]
             + hvps * m * per_example["hvp"])  # fmt: skip
    return {"flops": flops, "cpu_s": flops / cpu_rate + runs * CPU_REST_S, "gpu_s": flops / GPU_FLOP_S + runs * GPU_REST_S}


def search_estimate(config: SearchConfig, per_example: dict[str, float], cpu_rate: float) -> dict[str, float]:
    """One search, from PER_SEARCH's counts."""
    counts, steps = PER_SEARCH[config.mode], config.run.steps
    return _estimate(config.run, per_example, cpu_rate, evaluations=counts["runs"] * (steps + 1), steps=counts["runs"] * steps,
                     measurements=counts["sharpness"], hvps=counts["hvp"], runs=counts["runs"], barriers=counts["barrier"])  # fmt: skip


def _schedule(run: RunConfig, kind: str) -> Callable[[int], bool]:
    """callbacks.measure_schedule at `run`'s steps per epoch."""
    n = run.subset or DATASETS[run.dataset][1]
    return measure_schedule(kind, math.ceil(n / (run.batch_size or n)))


def _training(run: RunConfig, per_example: dict[str, float], cpu_rate: float, steps: int,
              sharpness_at: Callable[[int], bool]) -> dict[str, float]:  # fmt: skip
    """One run of `steps` steps: the sharpness where sharpness_at (HVPS_PER_MEASUREMENT products each), L_t on the
    run's loss schedule, wherever the sharpness is measured and at the last step (as callbacks.Measurements does)."""
    loss_at = _schedule(run, run.loss_schedule)
    measurements = sum(map(sharpness_at, range(1, steps + 1)))
    evaluations = 1 + sum(sharpness_at(t) or loss_at(t) or t == steps for t in range(1, steps + 1))
    return _estimate(run, per_example, cpu_rate, evaluations=evaluations, steps=steps, measurements=measurements,
                     hvps=measurements * HVPS_PER_MEASUREMENT, runs=1)  # fmt: skip


def run_estimate(run: RunConfig, per_example: dict[str, float], cpu_rate: float) -> dict[str, float]:
    """One run of `run.steps` steps, the sharpness on its schedule."""
    return _training(run, per_example, cpu_rate, run.steps, _schedule(run, run.schedule))


def saturation_estimate(config: SaturationConfig, per_example: dict[str, float], cpu_rate: float) -> dict[str, float]:
    """Every seed at every c of the grid: tau + h steps, the sharpness over the window of 2 h + 1 steps."""
    total = dict.fromkeys(("flops", "cpu_s", "gpu_s"), 0.0)
    for x in config.x:
        window = config.window_steps(config.tau(2.0**x))
        one = _training(config.run, per_example, cpu_rate, window[-1], lambda t: window[0] <= t <= window[-1])
        for name, value in one.items():
            total[name] += value * len(config.seeds)
    return total
