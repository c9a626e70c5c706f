"""The Python API, the one façade over the package: the command line (cli.py) and notebooks call it.

    import phasediag
    tiny = {"dataset": "synthetic:1x8x8:256", "measure_examples": 64, "batch_size": 64, "width": 32}
    one = phasediag.run(c=2.0, **tiny)                                       # RunResult: lambda0, eta, history
    found = phasediag.search(**tiny)                                         # SearchResult: c_loss, ..., runs
    phasediag.sweep("sweeps/tiny.yaml")                                      # or a dict shaped like the YAML
    table = phasediag.results("tiny")                                        # one row per finished search
    figure = phasediag.diagram("tiny").figures["phase_diagram_width"]         # matplotlib Figures and tables

Options are the command line's, by the same names, with the same validation and defaults: every call builds its
dataclass through `run.config.parse`. Bad input raises ConfigError (a ValueError) with the CLI's one-line message,
before anything is created. Calls are as quiet as the CLI (no Lightning banners or tips), without adding a logging
handler. Heavy modules (torch, Lightning, MLflow, Optuna) are imported by the call that needs them.
"""

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasediag.reports.config import DiagramConfig, TrajectoriesConfig
from phasediag.run.config import ConfigError, RunConfig, parse
from phasediag.search.config import SearchConfig, StatusOptions, SweepOptions

if TYPE_CHECKING:
    import pandas as pd

    from phasediag.launchers.slurm import Submission
    from phasediag.launchers.status import SweepStatus
    from phasediag.reports.diagram import Output
    from phasediag.search.sweep import SweepSpec


@dataclass
class RunResult:
    """One tracked run at eta = c / lambda0."""

    run_id: str
    c: float
    lambda0: float
    eta: float
    diverged: bool
    history: "pd.DataFrame"  # index step t: loss, loss_ratio, batch_loss, sharpness, sharpness_ratio, ... accuracy
    hvps: int  # Hessian-vector products spent on the sharpness
    barrier: float | None = None  # with barrier=True: the loss barrier on the path theta_0 -> theta_T


@dataclass
class SearchResult:
    """One search's critical constants (NaN: not reached in [2^x_min, 2^x_max]) and its trained runs."""

    study_name: str
    parent_run_id: str
    lambda0: float
    constants: dict[str, float]  # c_loss, c_sharp, c_max, c_barrier and the 0/1 flags c_loss_censored, ...
    runs: "pd.DataFrame"  # one row per trained c (tracking.runs): run_id, x, c, eta, diverged, max_loss_ratio, ...
    n_runs: int  # trials trained (runs may also list runs of failed trials, retried)
    hvps: int
    non_monotone: list[str] = field(default_factory=list)  # questions whose answers were not monotone in c

    @property
    def c_loss(self) -> float:
        return self.constants["c_loss"]

    @property
    def c_sharp(self) -> float:
        return self.constants["c_sharp"]

    @property
    def c_max(self) -> float:
        return self.constants["c_max"]

    @property
    def c_barrier(self) -> float:
        return self.constants["c_barrier"]

    @property
    def censored(self) -> dict[str, bool]:
        """Per constant: its first 'yes' was the divergence itself, so it is c_max (its phase not seen)."""
        return {k.removesuffix("_censored"): bool(v) for k, v in self.constants.items() if k.endswith("_censored")}


@dataclass
class SweepResult:
    experiment: str
    searches: int  # the spec's points
    done: int  # of them finished
    runs: int  # runs trained in them
    spec: "SweepSpec"
    submission: "Submission | None" = None  # launcher=slurm: the SLURM job array submitted (docs/cluster.md)


# --- helpers shared by the calls and the CLI's other commands ---------------------------------------------------------


def _config(cls: type, options: Mapping[str, Any]) -> Any:
    """The validated dataclass, exactly as the CLI builds it (names, types, defaults, one-line errors)."""
    return parse(cls, dict(options))


def check_data(*configs: RunConfig) -> None:
    """Sizes against the data (subset, batch_size, measure_examples) and your own model's factory on the data, before
    any run or study is created."""
    from phasediag.run.checks import check_before_runs

    check_before_runs(*configs)


def check_store() -> None:
    """The tracking store answers; else TrackingError, one line naming it."""
    from phasediag import tracking

    tracking.check_reachable()


def store_with_data() -> None:
    """The analysis calls read an existing store: a missing SQLite file is an error, not a new empty store."""
    from phasediag import tracking

    uri = tracking.check_reachable()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).expanduser().is_file():
        raise tracking.TrackingError(f"tracking store {uri!r} does not exist: run a sweep first, or set MLFLOW_TRACKING_URI")


@contextmanager
def quiet_imports() -> Iterator[None]:
    """The warnings the CLI hides filtered for the call, MLflow imported inside: its import of tqdm.auto warns in a
    notebook without ipywidgets (about widgets phasediag does not use)."""
    from phasediag import logs

    with warnings.catch_warnings():
        logs.filter_warnings()
        warnings.filterwarnings("ignore", "IProgress not found")
        import mlflow  # noqa: F401

        yield


@contextmanager
def quiet() -> Iterator[None]:
    """quiet_imports, and Lightning's INFO lines (devices, tips) off at their loggers for the call: no handler is
    added and the loggers' levels are restored after. Lightning is imported first: it sets its levels at import."""
    from phasediag import logs

    with quiet_imports():
        import lightning  # noqa: F401

        saved = {name: logging.getLogger(name).level for name in logs.QUIET}
        try:
            for name, level in logs.QUIET.items():
                logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))
            yield
        finally:
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)


# --- name(**options) validates as the CLI does; name_from(config) runs a validated config (the CLI's way) -------------


def run(**options: Any) -> RunResult:
    """Train one tracked run: `phasediag run --option value ...` as a call (the same options)."""
    return run_from(_config(RunConfig, options))


def run_from(config: RunConfig) -> RunResult:
    with quiet():
        from phasediag.run import runner

        check_data(config)
        check_store()
        init = runner.initialize(config)
        run_id, result = runner.run_one(config, init)
    return RunResult(run_id, result.c, init.lambda0.value, result.eta, result.diverged, result.history, result.hvps,
                     result.barrier)  # fmt: skip


def search(**options: Any) -> SearchResult:
    """Run, resume or join the search of one (config, seed): `phasediag search ...` as a call. A search already
    finished (the same study: same options, however spelt) trains nothing and returns its constants."""
    return search_from(_config(SearchConfig, options))


def search_from(config: SearchConfig) -> SearchResult:
    with quiet():
        from phasediag import tracking
        from phasediag.search import study

        check_data(config.run)
        check_store()
        found = study.search(config)
    runs = tracking.runs(tracking.experiment_of(found.parent_run_id), parent_run_id=found.parent_run_id)
    return SearchResult(found.study_name, found.parent_run_id, found.lambda0, found.constants, runs, found.n_runs,
                        found.hvps, found.non_monotone)  # fmt: skip


def sweep(spec: "str | Path | Mapping[str, Any]", workers: int = 1, **worker_options: Any) -> SweepResult:
    """Every search of a sweep spec: a YAML file's path, or a dict shaped like one ({experiment, fixed, vary}).
    `worker_options`: storage, data_dir, accelerator, wait, as `phasediag sweep --help` describes them."""
    source = "<dict>" if isinstance(spec, Mapping) else str(spec)
    options = _config(SweepOptions, {"spec": source, "workers": workers, **worker_options})
    return sweep_from(options, spec if isinstance(spec, Mapping) else None)


def sweep_from(options: SweepOptions, spec: Mapping[str, Any] | None = None) -> SweepResult:
    """The sweep of options.spec (a YAML file), or of `spec` (a mapping) when given."""
    with quiet_imports():
        from phasediag.search import sweep as sweeps

    if spec is None:
        loaded = sweeps.SweepSpec.load(options.spec, options.overrides())
    else:
        loaded = sweeps.SweepSpec.from_dict(spec, options.overrides())
    check_data(*(point.run for point in loaded.points))
    check_store()
    if options.launcher == "slurm":
        return _submitted(loaded, options)
    with quiet():
        done, runs = sweeps.sweep(loaded, options.workers)
    return SweepResult(loaded.experiment, len(loaded.points), done, runs, loaded)


def _submitted(spec: "SweepSpec", options: SweepOptions) -> SweepResult:
    """launcher=slurm: the searches not done yet as one SLURM job array; with wait=true, followed to its end."""
    from phasediag.launchers import slurm

    submission = slurm.submit(spec, options.slurm)
    done, runs = slurm.follow(spec, submission) if options.wait else slurm.finished_searches(spec)
    return SweepResult(spec.experiment, len(spec.points), done, runs, spec, submission)


def status(spec: "str | Path", storage: str | None = None) -> "SweepStatus":
    """Where a sweep stands, per search: done, running, failed (and why) or not started (`phasediag status`)."""
    return status_from(_config(StatusOptions, {"spec": str(spec), "storage": storage}))


def status_from(options: StatusOptions) -> "SweepStatus":
    from phasediag.launchers.status import sweep_status
    from phasediag.search import sweep as sweeps

    spec = sweeps.SweepSpec.load(options.spec, options.overrides())
    store_with_data()
    return sweep_status(spec)


def results(experiment: str) -> "pd.DataFrame":
    """One row per finished search of the experiment: its configuration (depth, width, seed, ...), lambda0 and its
    constants c_loss, c_sharp, c_max, c_barrier with the censored flags: the table a phase diagram is made from.
    Logs a warning when a search was done twice (two parent runs of one study) or a config misses seeds."""
    if not experiment:
        raise ConfigError("experiment='' is not allowed: give a name")
    with quiet_imports():
        from phasediag.reports import diagram as reports

        store_with_data()
        return reports.finished_searches(experiment)


def diagram(experiment: str, **options: Any) -> "Output":
    """The phase diagram, relations and barrier figures of an experiment (`phasediag diagram`): `.figures` (matplotlib
    Figures by name), `.tables` (DataFrames), `.files` (the PNG and CSV written to `out`), `.run_id` (the analysis
    run, with log=True). Options: x, width_axis, out, log."""
    return diagram_from(_config(DiagramConfig, {"experiment": experiment, **options}))


def diagram_from(config: DiagramConfig) -> "Output":
    with quiet_imports():
        from phasediag.reports import diagram as reports

        store_with_data()
        return reports.diagram(config.experiment, config.x, _out(config), config.log, config.width_axis)


def trajectories(experiment: str, **options: Any) -> "Output":
    """Loss and sharpness against step and the interpolated loss of one search (`phasediag trajectories`), as
    `diagram` returns them. Options: search (parent run id or study name), c (values of c), out, log."""
    return trajectories_from(_config(TrajectoriesConfig, {"experiment": experiment, **options}))


def trajectories_from(config: TrajectoriesConfig) -> "Output":
    with quiet_imports():
        from phasediag.reports import diagram as reports

        store_with_data()
        return reports.trajectories(config.experiment, config.search, list(config.c) or None, _out(config), config.log)


def _out(config: DiagramConfig | TrajectoriesConfig) -> Path | None:
    return None if config.out is None else Path(config.out)
