"""`make gpu-check` (``python -m phasediag.gpu_check``): everything a GPU machine should be asked, in one script
that ends within BUDGET_S (GPU time is scarce) and leaves nothing running.

On a CUDA machine: the device; the tests marked ``gpu``; batched against sequential throughput for the issue's two
models; one full bisection search at the default K and at K = 32; the same search sequentially, its time split by
kind of computation (``costs``); TF32 against fp32 on one batched run; a Fig. 3-panel-sized sweep (4 widths, one
seed per width, extrapolated to 10 seeds); peak GPU memory; one Markdown table. A step that would start after the budget is spent is reported as
skipped. Without CUDA: one line, exit 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from phasediag import logs
from phasediag.run.config import data_folder

BUDGET_S = 7 * 60  # the limit is 8 minutes; a step started late may overrun a little
TESTS_TIMEOUT_S = 150
PANEL_WIDTHS = (128, 256, 512, 1024)
PANEL_SEEDS = 10  # the paper's; one is run per width and the rest extrapolated
FCN = dict(arch="fcn", depth=8, width=512, dataset="fashion_mnist", loss="mse", steps=10, log_checkpoints=False)
MYRTLE = dict(arch="cnn", depth=5, width=64, dataset="synthetic:3x32x32:8192", loss="xent", steps=10, log_checkpoints=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phasediag.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=None,
                        help="where Fashion-MNIST is (default: $PHASEDIAG_DATA, else ~/.cache/phasediag; synthetic stand-in if missing)")
    args = parser.parse_args(argv)
    logs.configure()
    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device on this machine (torch {torch.__version__}); nothing to check")
        return 0
    return GpuCheck(args.data_dir).run()


class GpuCheck:
    """The steps of the check; `accelerator` and `fcn` exist so that the tests can run the steps on CPU."""

    def __init__(self, data_dir: str | None, accelerator: str = "gpu", fcn: dict | None = None) -> None:
        self.start = time.monotonic()
        self.data_dir, self.accelerator = data_dir, accelerator
        self.rows: list[list[str]] = []
        self.fmnist = (data_folder(data_dir) / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
        self.fcn = fcn or (FCN if self.fmnist else {**FCN, "dataset": "synthetic:1x28x28:60000"})
        self.fcn_name = f"FCN d={self.fcn['depth']} w={self.fcn['width']}"

    def left(self) -> float:
        return BUDGET_S - (time.monotonic() - self.start)

    def step(self, name: str, fn) -> None:
        """Run one measurement unless the budget is spent; a failure is a row, not a crash."""
        if self.left() <= 0:
            self.rows.append([name, "skipped: time budget spent", ""])
            return
        began = time.monotonic()
        try:
            for row in fn():
                self.rows.append(row)
        except Exception as error:  # noqa: BLE001 - report it and go on: the table is what the GPU time buys
            self.rows.append([name, f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:150]}", ""])
        print(f"  {name}: {time.monotonic() - began:.0f} s", flush=True)

    def run(self) -> int:
        from phasediag import bench

        device = torch.cuda.get_device_properties(0)
        print(f"gpu-check on {device.name} ({device.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}; budget {BUDGET_S} s", flush=True)  # fmt: skip
        where = "Fashion-MNIST" if self.fmnist else "synthetic 1x28x28 stand-in (Fashion-MNIST not found)"
        self.step("tests marked gpu", self.tests)
        with tempfile.TemporaryDirectory() as folder, bench._tracking_store(folder):
            # the targets first; measured once already (2026-11-29), Myrtle's throughput last
            self.step(f"throughput {self.fcn_name}, {where}", lambda: self.throughput(self.fcn_name, self.fcn))
            self.step("one bisection search", self.one_search)
            self.step("Fig. 3 panel", self.panel)
            self.step("where a sequential search's time goes", self.breakdown)
            self.step("TF32 against fp32", self.tf32)
            self.step("throughput Myrtle-5 w=64, CIFAR-shaped synthetic", lambda: self.throughput("Myrtle-5 w=64", MYRTLE))
        self.rows.append(["peak GPU memory", f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", "this process"])
        self.rows.append(["wall of the whole check", f"{time.monotonic() - self.start:.0f} s", f"budget {BUDGET_S} s"])
        print()
        print(bench.table(["what", "value", "notes"], self.rows))
        return 0

    def tests(self) -> list[list[str]]:
        root = Path(__file__).resolve().parents[2]
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", str(root / "tests")]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=min(TESTS_TIMEOUT_S, self.left()), cwd=root,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))})  # fmt: skip
        except subprocess.TimeoutExpired:  # run() kills the child before raising
            return [["tests marked gpu", f"timed out after {TESTS_TIMEOUT_S} s", ""]]
        summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
        if done.returncode != 0:
            print(done.stdout[-4000:], done.stderr[-2000:], sep="\n", flush=True)
        return [["tests marked gpu", summary, f"exit {done.returncode}"]]

    def throughput(self, name: str, changes: dict) -> list[list[str]]:
        from phasediag import bench
        from phasediag.run import runner
        from phasediag.run.batched import copies_that_fit
        from phasediag.run.config import RunConfig

        config = RunConfig(**changes, data_dir=self.data_dir, accelerator=self.accelerator)
        init = runner.initialize(config)
        k = min(copies_that_fit(init), 16)
        cs = [2.0 ** (0.5 * i) for i in range(k)]  # c from 1 to ~2^7.5: no-catapult, catapult and divergent copies
        r = bench.batched_vs_sequential(config, cs)
        plain = bench.batched_vs_sequential(config, cs, sharpness=False)  # where the time goes: training alone
        return [[f"{name}: {k} sequential runs", f"{r['sequential_s']:.2f} s",
                 f"{k / r['sequential_s']:.2f} runs/s; {r['hvps']} HVPs"],
                [f"{name}: one batched run of K={k}", f"{r['batched_s']:.2f} s",
                 f"{k / r['batched_s']:.2f} runs/s, {r['speedup']:.1f}x (target >= 10x); max rel loss diff {r['max_rel_loss_diff']:.0e}"],
                [f"{name}: the same without sharpness", f"{plain['sequential_s']:.2f} s vs {plain['batched_s']:.2f} s",
                 f"{plain['speedup']:.1f}x: training and loss evaluation alone"]]  # fmt: skip

    def _search(self, width: int, seed: int = 0, batch_c: int = 0):
        from phasediag.run.config import RunConfig
        from phasediag.search.study import SearchConfig, search

        run = RunConfig(**{**self.fcn, "width": width, "seed": seed}, data_dir=self.data_dir, accelerator=self.accelerator,
                        experiment=f"gpu_check_k{batch_c}")  # fmt: skip
        began = time.monotonic()
        result = search(SearchConfig(run, batch_c=batch_c))
        return time.monotonic() - began, result

    def one_search(self) -> list[list[str]]:
        from phasediag.run.batched import MAX_BATCH_C
        from phasediag.vocabulary import CONSTANTS

        rows = []
        for batch_c, words in ((0, "auto"), (MAX_BATCH_C, "the CUDA default before 2026-12-06")):
            wall, result = self._search(self.fcn["width"], batch_c=batch_c)
            constants = ", ".join(f"{k}={v:.3g}" for k, v in result.constants.items() if k in CONSTANTS)
            rows.append([f"bisection search, {self.fcn_name}, K={result.batch_c} ({words})", f"{wall:.1f} s",
                         f"{result.n_runs} runs; {constants}"])  # fmt: skip
        return rows

    def breakdown(self) -> list[list[str]]:
        """The same search with batch_c=1, its time split by costs.breakdown (one row per kind of computation)."""
        from phasediag import bench
        from phasediag.run.config import RunConfig

        config = RunConfig(**self.fcn, data_dir=self.data_dir, accelerator=self.accelerator, experiment="gpu_check_breakdown")
        wall, result, rows, _ = bench.search_breakdown(config, batch_c=1)
        head = [[f"sequential bisection search (batch_c=1), {self.fcn_name}", f"{wall:.1f} s", f"{result.n_runs} runs"]]
        return head + [[f"  {row[0]}", row[3], f"{row[1]} x {row[2]}; {row[4]} of it; {row[6]} GFLOP/s"] for row in rows]

    def tf32(self) -> list[list[str]]:
        """What TensorFloat-32 products (JAX's default on such GPUs) would change: speed and values of one batched run
        of the FCN at K=16, against the same run in full fp32."""
        import pandas as pd

        from phasediag.costs import timed
        from phasediag.run import batched, runner
        from phasediag.run.config import RunConfig

        init = runner.initialize(RunConfig(**self.fcn, data_dir=self.data_dir, accelerator=self.accelerator))
        cs = [2.0 ** (0.5 * i) for i in range(16)]
        batched.train_batched(init, cs[:2])  # warm-up
        walls, results = {}, {}
        for tf32 in (False, True, False, True):  # ABAB: a drift of the machine's load cancels
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            try:
                wall, results[tf32] = timed(lambda: batched.train_batched(init, cs), init.device)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            walls.setdefault(tf32, []).append(wall)
        both = pd.concat([full.history[full.history["loss"] < 1e3].join(fast.history, suffixes=("", "_tf32"), how="inner")
                          for full, fast in zip(results[False], results[True])])  # a diverging copy amplifies any rounding
        loss, sharpness = ((both[f"{q}_tf32"] / both[q] - 1).abs().max() for q in ("loss", "sharpness"))
        fp32, tf = min(walls[False]), min(walls[True])
        same = sum(answers(full) == answers(fast) for full, fast in zip(results[False], results[True]))
        return [[f"TF32 vs fp32: one batched run of K={len(cs)}, {self.fcn_name}", f"{fp32:.2f} s vs {tf:.2f} s",
                 f"{fp32 / tf:.1f}x faster with TF32"],
                ["TF32 vs fp32: largest relative difference (loss < 1e3)", f"loss {loss:.1e}, sharpness {sharpness:.1e}",
                 f"loss, sharpness and divergence answers equal at {same}/{len(cs)} c"]]  # fmt: skip

    def panel(self) -> list[list[str]]:
        walls = []
        for width in PANEL_WIDTHS:
            if self.left() <= 0:
                break
            walls.append(self._search(width, seed=1)[0])
        done = len(walls)
        total = sum(walls) / done * len(PANEL_WIDTHS) * PANEL_SEEDS if done else float("nan")
        return [[f"Fig. 3 panel: {len(PANEL_WIDTHS)} widths x {PANEL_SEEDS} seeds, FCN d=8",
                 f"{total / 60:.1f} min (extrapolated)", f"measured {done} width(s) x 1 seed: {sum(walls):.0f} s; "
                 f"target < 10 min"]]  # fmt: skip


def answers(result) -> dict:
    """The search's yes/no answers of one run (critical.trial_answers), barrier aside."""
    from phasediag.physics.critical import trial_answers

    history = result.history
    return trial_answers(history["loss_ratio"].to_numpy(), history["sharpness_ratio"].to_numpy(), history["loss"].to_numpy())


if __name__ == "__main__":
    sys.exit(main())
