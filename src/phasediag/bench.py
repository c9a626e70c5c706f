"""`make bench` (``python -m phasediag.bench``): measured figures, printed as Markdown, all from one process.

The machines are shared and noisy, so timings are interleaved, repeated and reported as medians, and what
matters is reported as ratios measured side by side. Not a test: it prints figures and PASS/FAIL marks against
the targets, and always exits 0 unless it crashes.

Sections (add one: write a function taking the parsed arguments, append it to ``SECTIONS``):

* A. Foundation (issue 2): cost of one HVP against one gradient per ``hvp_mode``; the paper's sharpness
  estimator against the project's default on a 10-step run, with errors against a converged reference.
* B. uv model: ``uv_report.bench_uv()``.
* C. Search (issue 3): the paper's grid with its estimator against the default bisection, one seed.
* D. Per-run overhead of Lightning and MLflow against a bare torch loop.
* E. Batched runs (issue 12): K values of c as one stacked model against K sequential runs.
* F. Where one search's time goes: each kind of computation timed and FLOP-counted, times its count (``costs``).
* G. A bisection with K points per round: runs and rounds against K, on threshold answers (no training).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import torch

from phasediag import costs, logs
from phasediag.costs import timed
from phasediag.physics import hessian
from phasediag.run import batched, runner
from phasediag.reports import uv as uv_report
from phasediag.run.callbacks import Barrier, evaluate, interpolated_losses
from phasediag.run.config import RunConfig
from phasediag.physics.losses import LOSSES
from phasediag.search.study import SearchConfig, SearchResult, search
from phasediag.vocabulary import CONSTANTS

# --- section A settings
FOUNDATION = dict(arch="fcn", depth=8, width=512, dataset="fashion_mnist", subset=2048, loss="mse", c=2.0,
                  batch_size=512, steps=10, log_checkpoints=False)  # m = 2048 (mse): the measurement set is the subset
HVP_ROUNDS = 7  # rounds of (gradient, HVP) pairs per mode
RUN_ORDER = ("paper", "default", "default", "paper")  # ABBA: cancels a linear drift of the machine's load
REFERENCE_TOL, REFERENCE_MAX_ITER = 1e-7, 300
TARGET_HVP_RATIO, TARGET_ERROR, TARGET_HVP_SHARE = 2.2, 1e-3, 1 / 3



def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- section A


def hvp_costs(init: runner.Initialization) -> dict[str, float]:
    """Median seconds of one gradient and of one HVP per mode, and the median of the paired ratios HVP/gradient.

    Each HVP is timed right after a gradient (pairs, so the ratio sees the same load); ``cached`` is timed per
    product on an operator built beforehand, and its one-off build is timed separately (``build``).
    """
    model, loss_fn, device = init.model, LOSSES[init.config.loss], init.device
    inputs, targets = (t.to(device) for t in init.data.measurement_set)
    params = [p for _, p in hessian.trainable_parameters(model)]

    def gradient():
        return torch.autograd.grad(loss_fn(model(inputs), targets), params)

    def build():
        return hessian.HessianOperator(model, loss_fn, inputs, targets, mode="cached")

    ops = {mode: hessian.HessianOperator(model, loss_fn, inputs, targets, mode=mode) for mode in hessian.HVP_MODES}
    v = torch.randn(ops["cached"].dim, generator=torch.Generator().manual_seed(0)).to(device)
    for op in ops.values():  # warm-up: first calls allocate and trace
        op(v)
    gradient()
    times: dict[str, list[float]] = {k: [] for k in ("gradient", "build", *ops)}
    ratios: dict[str, list[float]] = {k: [] for k in ("build", *ops)}
    for _ in range(HVP_ROUNDS):
        for name in ratios:
            g, _ = timed(gradient, device)
            h, _ = timed(build if name == "build" else (lambda op=ops[name]: op(v)), device)
            times["gradient"].append(g)
            times[name].append(h)
            ratios[name].append(h / g)
    out = {f"{k}_s": statistics.median(x) for k, x in times.items()}
    return out | {f"{k}_ratio": statistics.median(x) for k, x in ratios.items()}


def states_along_run(init: runner.Initialization, c: float, steps: int) -> list[dict[str, torch.Tensor]]:
    """theta_t for t = 1..steps: runs of t steps without sharpness (SGD is cheap; same batches for every t)."""
    return [
        runner.train(dataclasses.replace(init, config=dataclasses.replace(init.config, steps=t)), c, sharpness=False).final_state
        for t in range(1, steps + 1)
    ]


def reference_sharpness(init: runner.Initialization, states: list[dict[str, torch.Tensor]]) -> list[hessian.Eigen]:
    """Converged top eigenvalue at each state: cold Lanczos at tol 1e-7 (not timed)."""
    model = copy.deepcopy(init.model)
    inputs, targets = init.data.measurement_set
    out = []
    for t, state in enumerate(states, start=1):
        model.load_state_dict(state)
        out.append(hessian.top_eigenvalue(
            model, LOSSES[init.config.loss], inputs.to(init.device), targets.to(init.device), method="lanczos",
            tol=REFERENCE_TOL, max_iter=REFERENCE_MAX_ITER, generator=torch.Generator(init.device).manual_seed(1000 + t),
        ))  # fmt: skip
    return out


def section_foundation(args: argparse.Namespace) -> None:
    config = RunConfig(**FOUNDATION, data_dir=args.data_dir)
    print(f"Model FCN d={config.depth} w={config.width} ({config.loss}), {config.subset} Fashion-MNIST examples, "
          f"measurement set m={config.measure_size}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    init = runner.initialize(config)
    print(f"lambda0 = {init.lambda0.value:.6g} ({init.lambda0.hvps} HVPs, residual {init.lambda0.residual:.1e}), "
          f"device {init.device}\n")

    # (1) HVP against gradient
    cost = hvp_costs(init)
    print(f"### A1. HVP cost (median of {HVP_ROUNDS} interleaved rounds; ratio = median of paired HVP/gradient)\n")
    rows = [["gradient", f"{cost['gradient_s']:.3f}", "1.00", ""]]
    rows += [[f"HVP {mode}", f"{cost[f'{mode}_s']:.3f}", f"{cost[f'{mode}_ratio']:.2f}",
              mark(cost[f"{mode}_ratio"] <= TARGET_HVP_RATIO) if mode == "cached" else ""] for mode in hessian.HVP_MODES]
    rows.append(["cached graph build (once per solve)", f"{cost['build_s']:.3f}", f"{cost['build_ratio']:.2f}", ""])
    print(table(["operation", "median s", "x gradient", f"target <= {TARGET_HVP_RATIO}x"], rows))

    # (2) 10-step run at c: the paper's estimator against the default one
    c = config.c
    states = states_along_run(init, c, config.steps)  # also warms Lightning up before the timed runs
    inits = {
        "paper": dataclasses.replace(init, config=dataclasses.replace(config, sharpness_method="power")),
        "default": init,  # RunConfig defaults: warm-started Lanczos, tol 1e-3, cached HVPs
    }
    walls: dict[str, list[float]] = {k: [] for k in inits}
    results: dict[str, runner.RunResult] = {}
    for name in RUN_ORDER:
        wall, results[name] = timed(lambda: runner.train(inits[name], c), init.device)
        walls[name].append(wall)
    ref = reference_sharpness(init, states)
    ref_values = torch.tensor([e.value for e in ref], dtype=torch.float64)
    errors = {
        name: ((torch.tensor(r.history["sharpness"].loc[1:].to_numpy(), dtype=torch.float64) - ref_values).abs() / ref_values)
        for name, r in results.items()
    }
    # the timed runs follow the same trajectory as the states the reference was computed at
    model, (inputs, targets) = copy.deepcopy(init.model), init.data.measurement_set
    drift = 0.0
    for t, state in enumerate(states, start=1):
        model.load_state_dict(state)
        loss, _ = evaluate(model, LOSSES[config.loss], inputs.to(init.device), targets.to(init.device))
        drift = max(drift, abs(loss - results["default"].history["loss"].loc[t]) / abs(loss))

    print(f"\n### A2. {config.steps}-step run at c={c:g}, batch {config.batch_size}, sharpness at every step "
          f"(wall: median of {RUN_ORDER.count('paper')} runs, order {'/'.join(RUN_ORDER)})\n")
    labels = {"paper": "paper: cold power iteration, 20 HVPs/step", "default": "default: warm Lanczos, tol 1e-3, cached"}
    rows = [[labels[k], results[k].hvps, f"{statistics.median(walls[k]):.1f}", f"{float(errors[k].max()):.2e}"] for k in inits]
    print(table(["estimator", "HVPs", "wall s", "max rel error"], rows))
    share = results["default"].hvps / results["paper"].hvps
    print(f"\nHVP/gradient ({config.hvp_mode}): {cost[f'{config.hvp_mode}_ratio']:.2f}x "
          f"[{mark(cost[f'{config.hvp_mode}_ratio'] <= TARGET_HVP_RATIO)} <= {TARGET_HVP_RATIO}x]")
    print(f"default max error {float(errors['default'].max()):.1e} [{mark(float(errors['default'].max()) <= TARGET_ERROR)} "
          f"<= {TARGET_ERROR:g}]; default HVPs / paper HVPs = {share:.3f} [{mark(share <= TARGET_HVP_SHARE)} <= 1/3]; "
          f"wall ratio paper/default = {statistics.median(walls['paper']) / statistics.median(walls['default']):.2f}")
    print(f"(reference: cold Lanczos tol {REFERENCE_TOL:g}, max {REFERENCE_MAX_ITER} HVPs, untimed; "
          f"max rel. loss mismatch reference states vs timed run {drift:.1e})\n")
    rows = [[t, f"{e.value:.6g}", e.hvps, f"{e.residual:.0e}", f"{float(errors['paper'][t - 1]):.1e}",
             f"{float(errors['default'][t - 1]):.1e}", f"{results['default'].history['sharpness_ratio'].loc[t]:.3f}",
             f"{results['default'].history['loss_ratio'].loc[t]:.3f}"] for t, e in enumerate(ref, start=1)]
    print(table(["t", "reference lambda_t", "ref HVPs", "ref residual", "paper error", "default error",
                 "lambda_t/lambda_0", "L_t/L_0"], rows))


# --------------------------------------------------------------------------------------------- section B


def section_uv(args: argparse.Namespace) -> None:
    print("Fig. 7 computation in closed form (widths 2..512, 500 inits, c step 0.1), best of 3\n")
    print(table(["figure", "value"], [[k, f"{v:.4g}"] for k, v in uv_report.bench_uv().items()]))


# --------------------------------------------------------------------------------------------- section C

# L_t and the barriers on the measurement set, as when the >= 15x target was set: on the training set (the default)
# the loss evaluations, the same per run for both protocols, would bound the ratio by the runs' ratio
SEARCH = dict(arch="fcn", depth=4, width=128, dataset="fashion_mnist", seed=0, loss_set="measure", log_checkpoints=False)


def section_search(args: argparse.Namespace) -> None:
    """The paper's protocol (grid scan, cold power-20 sharpness at every step) against the default bisection."""
    with tempfile.TemporaryDirectory() as folder, _tracking_store(folder):
        run = RunConfig(**SEARCH, data_dir=args.data_dir)
        configs = {
            "grid + paper estimator": SearchConfig(dataclasses.replace(run, sharpness_method="power"), mode="grid"),
            "bisect + default estimator": SearchConfig(run),
        }
        results, walls = {}, {}
        for name, config in configs.items():
            walls[name], results[name] = timed(lambda: search(config), torch.device("cpu"))
    print(f"FCN d={run.depth} w={run.width} on Fashion-MNIST (all 60000 examples, B=512, m=2048; L_t and barriers on the m), seed {run.seed}, "
          f"x in [{configs['grid + paper estimator'].x_min:g}, {configs['grid + paper estimator'].x_max:g}] step 0.1\n")
    rows = [[name, r.n_runs, r.hvps, f"{walls[name]:.0f}", *[f"{r.constants[c]:.3g}" for c in CONSTANTS]]
            for name, r in results.items()]  # fmt: skip
    print(table(["protocol", "runs", "HVPs", "wall s", *CONSTANTS], rows))
    grid, bisect = results["grid + paper estimator"], results["bisect + default estimator"]
    agree = sum(_same(grid.constants[c], bisect.constants[c]) for c in CONSTANTS)
    speedup = walls["grid + paper estimator"] / walls["bisect + default estimator"]
    print(f"\nruns bisect/grid = {bisect.n_runs / grid.n_runs:.3f} [{mark(bisect.n_runs <= grid.n_runs / 4)} <= 1/4]; "
          f"wall grid/bisect = {speedup:.1f}x [{mark(speedup >= 15)} >= 15x]; constants equal within 0.1 in log2 c: {agree}/4")


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(math.log2(a) - math.log2(b)) <= 0.1 + 1e-9


@contextlib.contextmanager
def _tracking_store(folder: str):
    """Searches log to a throw-away SQLite store, not to the user's mlruns.db."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlruns.db"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


# --------------------------------------------------------------------------------------------- section D


def section_overhead(args: argparse.Namespace) -> None:
    """What Lightning and MLflow add to one run, against the same SGD steps and measurements in a bare loop."""
    config = RunConfig(**{**FOUNDATION, "depth": 4, "width": 256, "subset": 0}, data_dir=args.data_dir)
    init = runner.initialize(config)
    loss_fn = LOSSES[config.loss]
    inputs, targets = (t.to(init.device) for t in init.data.measurement_set)

    def bare() -> None:
        model = copy.deepcopy(init.model)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.c / init.lambda0.value)
        evaluate(model, loss_fn, inputs, targets)
        for t, (x, y) in enumerate(init.data.train_dataloader(), start=1):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            evaluate(model, loss_fn, inputs, targets)
            if t == config.steps:
                break

    with tempfile.TemporaryDirectory() as folder, _tracking_store(folder):
        runner.run_one(config, init)  # warm-up: creates the store
        walls = {"bare torch loop": [], "runner.train (Lightning), no sharpness": [], "runner.run_one: train + MLflow logging, no sharpness": [],
                 "runner.train with sharpness (default estimator)": []}  # fmt: skip
        jobs = [bare, lambda: runner.train(init, config.c, sharpness=False), lambda: runner.run_one(config, init, sharpness=False),
                lambda: runner.train(init, config.c)]  # fmt: skip
        for _ in range(3):
            for name, job in zip(walls, jobs):
                walls[name].append(timed(job, init.device)[0])
    medians = {name: statistics.median(w) for name, w in walls.items()}
    print(f"FCN d={config.depth} w={config.width}, {config.steps} SGD steps (B={config.batch_size}) and {config.steps + 1} "
          f"loss evaluations on m={config.measure_size}; median of 3 interleaved rounds\n")
    print(table(["job", "median s"], [[k, f"{v:.2f}"] for k, v in medians.items()]))
    lightning = medians["runner.train (Lightning), no sharpness"] - medians["bare torch loop"]
    mlflow = medians["runner.run_one: train + MLflow logging, no sharpness"] - medians["runner.train (Lightning), no sharpness"]
    print(f"\nLightning overhead {lightning:.2f} s, MLflow logging {mlflow:.2f} s per run; together "
          f"{(lightning + mlflow) / medians['runner.train with sharpness (default estimator)']:.1%} of a run with sharpness")


# --------------------------------------------------------------------------------------------- section E

BATCHED_CPU = {
    "FCN d=4 w=128, Fashion-MNIST (2048), mse": dict(arch="fcn", depth=4, width=128, dataset="fashion_mnist", subset=2048),
    "Myrtle-5 w=16, CIFAR-shaped synthetic (1024), xent": dict(arch="cnn", depth=5, width=16, loss="xent",
                                                                 dataset="synthetic:3x32x32:1024", measure_examples=512),
}


def batched_vs_sequential(config: RunConfig, cs: list[float], rounds: int = 1, sharpness: bool = True) -> dict[str, float]:
    """Wall of len(cs) sequential runs against one batched run at the same c values (10 steps, sharpness at every
    step unless `sharpness` is false), the medians of `rounds` interleaved rounds, and the largest relative loss
    difference between the two."""
    init = runner.initialize(config)
    runner.train(init, cs[0], sharpness=False)  # warm-up (Lightning, allocator, kernels)
    sequential, together = [], []
    for _ in range(rounds):
        wall, seq = timed(lambda: [runner.train(init, c, sharpness=sharpness) for c in cs], init.device)
        sequential.append(wall)
        wall, bat = timed(lambda: batched.train_batched(init, cs, sharpness=sharpness), init.device)
        together.append(wall)
    diff = max(float(((b.history["loss"] - s.history["loss"]).abs() / s.history["loss"].abs()).max()) for s, b in zip(seq, bat))
    seq_s, bat_s = statistics.median(sequential), statistics.median(together)
    return {"K": len(cs), "sequential_s": seq_s, "batched_s": bat_s, "speedup": seq_s / bat_s, "max_rel_loss_diff": diff,
            "hvps": sum(r.hvps for r in seq)}  # fmt: skip


def section_batched(args: argparse.Namespace) -> None:
    """On CPU: is the batched path any faster than running the c values one after the other?"""
    cs = [1.0, 2.0, 4.0, 8.0]
    rows = []
    for name, changes in BATCHED_CPU.items():
        r = batched_vs_sequential(RunConfig(**{"steps": 10, "log_checkpoints": False, "data_dir": args.data_dir, **changes}), cs)
        rows.append([name, r["K"], r["hvps"], f"{r['sequential_s']:.1f}", f"{r['batched_s']:.1f}", f"{r['speedup']:.2f}",
                     f"{r['max_rel_loss_diff']:.1e}"])  # fmt: skip
    print(f"c = {cs}, 10 SGD steps (B=512), warm Lanczos sharpness at every step, {torch.get_num_threads()} threads\n")
    print(table(["model", "K", "HVPs (sequential)", "K sequential s", "1 batched s", "speed-up", "max rel loss diff"], rows))


# --------------------------------------------------------------------------------------------- section F

BREAKDOWN = dict(arch="fcn", depth=4, width=128, dataset="fashion_mnist", loss="mse", steps=10, log_checkpoints=False)


def search_breakdown(config: RunConfig, **search_changes) -> tuple[float, SearchResult, list[list[str]], runner.Initialization]:
    """(wall, result, rows of costs.breakdown, the initialisation) of one search in a throw-away store."""
    with tempfile.TemporaryDirectory() as folder, _tracking_store(folder):
        wall, result = timed(lambda: search(SearchConfig(config, **search_changes)), runner.device_for(config.accelerator))
        init = runner.initialize(config)  # the search's own, rebuilt: search() keeps it to itself
        counts = costs.search_counts(config.experiment, result.parent_run_id, init.lambda0.hvps)
        return wall, result, costs.breakdown(costs.unit_costs(init), counts, wall), init


def section_breakdown(args: argparse.Namespace) -> None:
    """One bisection search of the agreement's FCN on the full Fashion-MNIST (L_t and the barrier on all 60000 images).
    The unit costs are timed after the search: a machine busy with other work then makes 'the rest' wrong."""
    config = RunConfig(**BREAKDOWN, data_dir=args.data_dir, experiment="bench_breakdown")
    wall, result, rows, init = search_breakdown(config, batch_c=1)
    constants = ", ".join(f"{name} {result.constants[name]:.3g}" for name in CONSTANTS)
    print(f"FCN d={config.depth} w={config.width}, {config.dataset} ({config.subset or 'all'} training images), seed {config.seed}: one "
          f"bisection search, {result.n_runs} runs in {wall:.1f} s ({constants}), {torch.get_num_threads()} threads\n")  # fmt: skip
    print(table(costs.HEADER, rows))
    fast, direct = barrier_paths(init)
    print(f"\nOne barrier, side by side (ABBA): the first layer interpolated {fast:.2f} s, recomputed at every point "
          f"{direct:.2f} s: {direct / fast:.1f}x")  # fmt: skip


def barrier_paths(init: runner.Initialization) -> tuple[float, float]:
    """Median seconds of one barrier with the FCN's first layer interpolated, and recomputed at every point (the
    same model inside a plain Sequential, which hides its stem), in ABBA order."""
    loss_fn, (inputs, targets) = LOSSES[init.config.loss], runner.loss_examples(init)
    model = copy.deepcopy(init.model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)  # any other end point costs the same
    hidden = torch.nn.Sequential(model)
    walls = {True: [], False: []}
    for fast in (True, False, False, True):
        net = model if fast else hidden
        start = {name: p.detach() * (1 / 1.1) for name, p in net.named_parameters()}
        walls[fast].append(timed(lambda: interpolated_losses(net, start, loss_fn, inputs, targets, Barrier.GRID), init.device)[0])
    return statistics.median(walls[True]), statistics.median(walls[False])


# --------------------------------------------------------------------------------------------- section G

# Measured constants: the GPU check's search (FCN d=8 w=512, Fashion-MNIST, seed 0), a full-size CPU search (FCN d=4
# w=256, Fashion-MNIST, seed 0; README, bench F) and the paper's Fig. 2 (CNNs on CIFAR-10; the deep one has no
# barrier below its divergence: censored to c_max).
THRESHOLDS = {"FCN d=8 w=512 (GPU check)": {"loss": 2.83, "sharp": 4.59, "barrier": 6.5, "max": 13.0},
              "FCN d=4 w=256 (CPU, 60000 images)": {"loss": 3.48, "sharp": 6.06, "barrier": 8.57, "max": 9.85},
              "CNN d=5 w=512 (paper, Fig. 2a-c)": {"loss": 2.82, "sharp": 5.65, "barrier": 5.65, "max": 17.14},
              "CNN d=10 w=128 (paper, Fig. 2d-f)": {"loss": 36.75, "sharp": 39.39, "barrier": 48.5, "max": 48.5}}  # fmt: skip
BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def rounds_and_runs(config: SearchConfig, thresholds: dict[str, float], size: int) -> tuple[int, int]:
    """(rounds, runs) of a search asking `size` points per round as search/batched.py does (each asked point
    pending while the next is chosen), answered by c >= threshold per question (c_max: above it)."""
    ledger = config.empty_ledger()
    rounds = runs = 0
    while not ledger.complete:
        asked = []
        for _ in range(size):
            k = ledger.next_point()
            if k is None or ledger.plan(k) is None:
                break
            ledger.pending.add(k)
            asked.append(k)
        for k in asked:
            ledger.pending.discard(k)
            c = 2.0 ** config.x(k)
            ledger.record(k, {q: c > t if q == "max" else c >= t for q, t in thresholds.items()})
        rounds, runs = rounds + 1, runs + len(asked)
    return rounds, runs


def section_rounds(args: argparse.Namespace) -> None:
    """K points per round shorten a search in rounds but lengthen it in runs; which wins depends on what a round of
    K costs against one run (section E on CPU, the GPU check's throughput rows on a GPU)."""
    config = SearchConfig(RunConfig())
    rows = []
    for name, thresholds in THRESHOLDS.items():
        counts = [rounds_and_runs(config, thresholds, k) for k in BATCH_SIZES]
        rows.append([name, *(f"{rounds} / {runs}" for rounds, runs in counts)])
    print("Default bisection settings, answers alone (no margins: the real search also probes where the margins cross "
          "zero, which saves runs at every K)\n")  # fmt: skip
    print(table(["constants", *(f"K={k}: rounds / runs" for k in BATCH_SIZES)], rows))


# --------------------------------------------------------------------------------------------- driver

SECTIONS: list[tuple[str, str, Callable[[argparse.Namespace], None]]] = [
    ("A", "Foundation: HVP cost and sharpness estimators (issue 2)", section_foundation),
    ("B", "uv model", section_uv),
    ("C", "Search: the paper's grid protocol against the bisection (issue 3)", section_search),
    ("D", "Per-run overhead of Lightning and MLflow", section_overhead),
    ("E", "Batched runs: K values of c as one model, against K sequential runs (issue 12)", section_batched),
    ("F", "Where one search's time goes", section_breakdown),
    ("G", "A bisection with K points per round: rounds and runs", section_rounds),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phasediag.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default=",".join(key for key, _, _ in SECTIONS),
                        help="comma-separated section letters to run (default: all)")
    parser.add_argument("--data_dir", default=None, help="where Fashion-MNIST is (as for `phasediag data`)")
    args = parser.parse_args(argv)
    logs.configure()
    wanted = {s.strip().upper() for s in args.sections.split(",")}
    for key, title, fn in SECTIONS:
        if key in wanted:
            start = time.perf_counter()
            print(f"## {key}. {title}\n", flush=True)
            fn(args)
            print(f"\n(section {key}: {time.perf_counter() - start:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
