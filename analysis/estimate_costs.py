"""What the figure specs cost, estimated: the work each command does (a search: the average counts of measured
searches, costs.PER_SEARCH; a run or a saturation scan: its steps, loss evaluations and sharpness window) times the
model's FLOPs (counted), at this machine's measured forward-pass rate (CPU) and at 20 TFLOP/s (one H200, fp32).

    python analysis/estimate_costs.py sweeps/fig3d_fcn_fmnist_depth_w256.yaml sweeps/fig37_*.sh

A YAML spec is a sweep of searches; a shell spec is read by running it with PHASEDIAG=echo (its command lines; the uv
model's closed forms cost seconds and are left out). Prints one Markdown row per spec; the README's figure table is
made of these.
"""

import argparse
import os
import shlex
import subprocess

from phasediag import costs, logs
from phasediag.bench import table
from phasediag.cli import parse
from phasediag.search.sweep import SweepSpec

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("specs", nargs="+", help="sweep spec YAML files and figure shell scripts")
args = parser.parse_args()
logs.configure()
measured: dict[tuple, tuple[dict, float]] = {}  # one count and one timing per model, whatever the seed


def model_costs(run) -> tuple[dict, float]:
    key = (run.arch, run.depth, run.width, run.param, run.dataset, run.loss, run.bias, run.output, run.output_scale, run.output_sigma)
    if key not in measured:
        per_example = costs.flops_per_example(run)
        measured[key] = per_example, costs.cpu_flop_rate(run, per_example)
    return measured[key]


def commands(path: str) -> list[tuple[str, object]]:
    """(command, config) of every unit of work of a spec."""
    if path.endswith((".yaml", ".yml")):
        return [("search", point) for point in SweepSpec.load(path).points]
    lines = subprocess.run(["bash", path], env={**os.environ, "PHASEDIAG": "echo"}, capture_output=True, text=True, check=True).stdout
    return [parse(shlex.split(line)) for line in lines.splitlines() if line and not line.startswith("uv")]


ESTIMATE = {"search": costs.search_estimate, "run": costs.run_estimate, "saturation": costs.saturation_estimate}


def duration(seconds: float) -> str:
    for unit, size in (("years", 365 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}" if seconds >= 10 * size else f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


rows = []
for path in args.specs:
    total = dict.fromkeys(("flops", "cpu_s", "gpu_s"), 0.0)
    work = commands(path)
    for name, config in work:
        run = config if name == "run" else config.run
        for key, value in ESTIMATE[name](config, *model_costs(run)).items():
            total[key] += value
    rows.append([os.path.basename(path), len(work), f"{total['flops'] / 1e15:.1f}", duration(total["cpu_s"]), duration(total["gpu_s"])])
    print(rows[-1], flush=True)
print(table(["spec", "commands", "PFLOP", "CPU, 2 cores (est.)", "one H200 (est.)"], rows))
