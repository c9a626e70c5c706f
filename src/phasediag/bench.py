"""`make bench` (``python -m phasediag.bench``): measured figures, printed as Markdown, all from one process.

The machines are shared and noisy, so timings are interleaved, repeated and reported as medians, and what
matters is reported as ratios measured side by side. Not a test: it prints figures and PASS/FAIL marks against
the targets, and always exits 0 unless it crashes.

Sections (add one: write a function taking the parsed arguments, append it to ``SECTIONS``):

* A. Foundation (issue 2): cost of one HVP against one gradient per ``hvp_mode``; the paper's sharpness
  estimator against the project's default on a 10-step run, with errors against a converged reference.
* B. uv model: ``uvjob.bench_uv()``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

from phasediag import hessian, runner, uvjob
from phasediag.callbacks import evaluate
from phasediag.config import RunConfig
from phasediag.losses import LOSSES

# --- section A settings
FOUNDATION = dict(arch="fcn", depth=8, width=512, dataset="fashion_mnist", subset=2048, loss="mse", c=2.0,
                  batch_size=512, steps=10, log_checkpoints=False)  # m = 2048 (mse): the measurement set is the subset
HVP_ROUNDS = 7  # rounds of (gradient, HVP) pairs per mode
RUN_ORDER = ("paper", "default", "default", "paper")  # ABBA: cancels a linear drift of the machine's load
REFERENCE_TOL, REFERENCE_MAX_ITER = 1e-7, 300
TARGET_HVP_RATIO, TARGET_ERROR, TARGET_HVP_SHARE = 2.2, 1e-3, 1 / 3

warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's, once per run


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
    print(table(["figure", "value"], [[k, f"{v:.4g}"] for k, v in uvjob.bench_uv().items()]))


# --------------------------------------------------------------------------------------------- driver

SECTIONS: list[tuple[str, str, Callable[[argparse.Namespace], None]]] = [
    ("A", "Foundation: HVP cost and sharpness estimators (issue 2)", section_foundation),
    ("B", "uv model", section_uv),
    # ("C", "Search: grid vs bisection", section_search),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phasediag.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default=",".join(key for key, _, _ in SECTIONS),
                        help="comma-separated section letters to run (default: all)")
    parser.add_argument("--data_dir", default="data", help="where Fashion-MNIST is (as for `phasediag data`)")
    args = parser.parse_args(argv)
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
