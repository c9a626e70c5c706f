"""What `phasediag COMMAND --help` says before the options: what the command does, an example, and where its
results go. The options' own descriptions are the dataclass fields' docstrings (run.config, search.config,
reports.config). Light: `phasediag --help` imports it.
"""

import textwrap

from jsonargparse import DefaultHelpFormatter

STORE = ("the MLflow tracking store: $MLFLOW_TRACKING_URI, else ./mlflow.db with artifacts in ./mlruns (open it with "
         "`mlflow ui` in this folder)")  # fmt: skip
LEDGER = ("the search's ledger: the Optuna storage --storage, else optuna.db next to the tracking store; the same "
          "command again resumes it")  # fmt: skip
FILES = "PNG and CSV files in --out; with --log true (the default) also one MLflow run in " + STORE
ANALYSIS = "reads the experiment's runs from " + STORE + "; writes " + FILES.replace("one MLflow run", "an analysis run")

OVERVIEW = ("Early-training phase diagrams (Kalra & Barkeshli, NeurIPS 2023): train at eta = c / lambda0, search the "
            "critical constants c_loss, c_sharp, c_max, c_barrier, draw the paper's figures. A first try: `phasediag "
            "search --preset tiny`. `phasediag COMMAND --help` says what a command does, gives an example and where "
            "its results go.")  # fmt: skip

# command -> (an example, where its results go)
GUIDE: dict[str, tuple[str, str]] = {
    "run": ("phasediag run --preset tiny --c 4", "one MLflow run (loss and sharpness per step, lambda0, diverged) in " + STORE),
    "search": ("phasediag search --preset tiny --depth 2 --seed 0",
               "a parent MLflow run with c_loss, c_sharp, c_max, c_barrier and a child run per c, in " + STORE + "; "
               + LEDGER),
    "sweep": ("phasediag sweep sweeps/tiny.yaml --workers 2", "one search per point, as `phasediag search`, in " + STORE
              + "; " + LEDGER + " (one per point, in the shared --storage)"),
    "status": ("phasediag status sweeps/tiny.yaml", "prints, per search of the sweep, done, running, failed or not "
               "started; reads the Optuna storage (--storage, else optuna.db next to the tracking store)"),
    "uv": ("phasediag uv --widths 2 8 32 --inits 100 --out out/uv", FILES),
    "uv_figures": ("phasediag uv_figures --widths 2 8 --inits 50 --out out/uv_figures", FILES),
    "data": ("phasediag data", "Fashion-MNIST's IDX files, copied from Debian's dataset-fashion-mnist, in --data_dir, "
             "else $PHASEDIAG_DATA, else ~/.cache/phasediag (where every command looks for data by default)"),
    "saturation": ("phasediag saturation --preset tiny --seeds 0 1 --x_max 3", FILES),
    "saturation_widths": ("phasediag saturation_widths --preset tiny --widths 16 64 --seeds 0 1 --x_max 3", FILES),
    "longrun": ("phasediag longrun --preset tiny --cs 2 8 --epochs 20", FILES),
    "diagram": ("phasediag diagram --experiment tiny", ANALYSIS),
    "trajectories": ("phasediag trajectories --experiment phasediag", ANALYSIS),
    "claims": ("phasediag claims --experiment tiny", ANALYSIS),
}


def description(name: str, doc: str | None) -> str:
    """What the command does (its dataclass's docstring), an example, where its results go."""
    what = " ".join((doc or name).split("\n\n")[0].split())
    example, where = GUIDE.get(name, ("", ""))
    return "\n\n".join(part for part in (what, example and f"example:\n  {example}", where and f"results: {where}") if part)


class HelpFormatter(DefaultHelpFormatter):
    """Keeps the description's paragraphs and the example's line as written (the options are formatted as usual)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            line if line.startswith("  ") else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
            for line in text.splitlines()
        )  # fmt: skip
