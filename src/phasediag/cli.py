"""`phasediag COMMAND --option value ...`: the command line, derived from the dataclasses that declare each job
(run.config, search.config, reports.config). Thin: parse, check, call the package, print the result.

Bad input ends here as one line `phasediag: error: ...` and exit status 2, before any run is created.
Heavy modules (torch, Lightning, MLflow, Optuna) are imported by the command that needs them, so --help is fast.
"""

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from phasediag.reports.config import (
    AnalysisConfig, ClaimsConfig, DiagramConfig, LongrunConfig, SaturationConfig, SaturationWidthsConfig, TrajectoriesConfig,
    UVConfig, UVFiguresConfig,
)  # fmt: skip
from phasediag import api, guide
from phasediag.run.config import ConfigError, DataConfig, RunConfig, add_arguments, data_folder, normalize_argv, one_line, resolve
from phasediag.search.config import SearchConfig, StatusOptions, SweepOptions

COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {}


def command(name: str, cls: type):
    """Register a sub-command: its options are the fields of `cls`, the decorated function runs it."""

    def register(function: Callable[[Any], int]):
        COMMANDS[name] = (cls, function)
        return function

    return register


def _experiment_of(run_id: str) -> str:
    """Where a run really is: under `mlflow run`, the experiment MLflow chose, which may not be --experiment."""
    from phasediag import tracking

    return tracking.experiment_of(run_id)


def _tracking_uri() -> str:
    """Check that the tracking store answers; how to open it (the last line of a command)."""
    api.check_store()
    return _ui()


def _ui() -> str:
    from phasediag import tracking

    return tracking.ui_command()


def _runs_table(experiment: str) -> str:
    """The closing line of a command that trains: the address of the experiment's runs table in the MLflow UI."""
    from phasediag import tracking

    return tracking.open_runs_table(experiment)


def _quiet_optuna() -> None:
    """Optuna's records through our handler (warnings and up), not its own INFO handler."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


@command("run", RunConfig)
def run_command(config: RunConfig) -> int:
    result = api.run_from(config)
    status = "diverged" if result.diverged else "finished"
    print(f"run {result.run_id} {status}: lambda0={result.lambda0:.6g} eta={result.eta:.4g} "
          f"max_loss_ratio={result.history['loss_ratio'].iloc[1:].max():.4g} hvps={result.hvps}")  # fmt: skip
    print(_runs_table(_experiment_of(result.run_id)))
    return 0


@command("search", SearchConfig)
def search_command(config: SearchConfig) -> int:
    _quiet_optuna()
    result = api.search_from(config)
    constants = "  ".join(f"{k}={v:.4g}" for k, v in result.constants.items())
    print(f"search {result.study_name}: lambda0={result.lambda0:.6g}  {constants}  runs={result.n_runs} hvps={result.hvps}"
          + (f"  non-monotone: {', '.join(result.non_monotone)}" if result.non_monotone else ""))  # fmt: skip
    print(f"parent run {result.parent_run_id}")
    print(_runs_table(_experiment_of(result.parent_run_id)))
    return 0


@command("sweep", SweepOptions)
def sweep_command(options: SweepOptions) -> int:
    _quiet_optuna()
    result = api.sweep_from(options)
    if result.submission is not None:
        _submitted(result.submission)
        if not options.wait:
            print(f"watch it with: phasediag status {options.spec}" + (f" --storage {options.storage}" if options.storage else ""))
            return 0
    print(f"sweep {result.experiment}: {result.done}/{result.searches} searches done, {result.runs} runs trained in them")
    print(f"next: phasediag diagram --experiment {result.experiment}")
    print(_runs_table(result.experiment))
    return 0


def _submitted(submission: Any) -> None:
    """--launcher slurm: what was submitted, and where its logs are."""
    if submission.job_id:
        print(f"sweep {submission.experiment}: {len(submission.tasks)} of {submission.searches} searches submitted as "
              f"SLURM job {submission.job_id}; logs in {submission.logs}/{submission.job_id}_*/")  # fmt: skip
    for what, points in (("done already", submission.done), ("still queued or running", submission.queued)):
        if points:
            print(f"sweep {submission.experiment}: {len(points)} searches {what}, not submitted")


@command("status", StatusOptions)
def status_command(options: StatusOptions) -> int:
    found = api.status_from(options)
    width = max(len(p.search) for p in found.points)
    for p in found.points:
        print(f"{p.point:>5}  {p.search:<{width}}  {p.state:<11}  {p.detail}".rstrip())
    counts = ", ".join(f"{n} {state}" for state, n in found.counts().items() if n)
    print(f"sweep {found.experiment}: {counts}" + (f"; SLURM logs in {found.logs}" if found.logs else ""))
    return 0 if found.complete else 1


@command("uv", UVConfig)
def uv_command(config: UVConfig) -> int:
    from phasediag.reports import uv as uv_report

    if config.log:
        _tracking_uri()
    out = Path(config.out)
    result = uv_report.run_uv(list(config.widths), config.inits, config.seed, config.c_step, config.steps, out,
                              config.experiment, config.log)  # fmt: skip
    print(f"uv model: wrote {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")
    if result.get("run_id"):
        print(f"logged as run {result['run_id']} in experiment {_experiment_of(result['run_id'])!r}")
    return 0


@command("uv_figures", UVFiguresConfig)
def uv_figures_command(config: UVFiguresConfig) -> int:
    from phasediag.reports import uv_figures

    if config.log:
        _tracking_uri()
    result = uv_figures.run_uv_figures(list(config.widths), config.inits, config.seed, config.steps, Path(config.out),
                                       config.experiment, config.log, config.init)  # fmt: skip
    print(result["fig9"].to_string(index=False))
    print(result["order"].to_string(index=False))
    print(f"uv figures: wrote {config.out}/ ({', '.join(p.name for p in result['files'].values())})")
    if result["run_id"]:
        print(f"logged as run {result['run_id']} in experiment {_experiment_of(result['run_id'])!r}")
    return 0


@command("data", DataConfig)
def data_command(config: DataConfig) -> int:
    from phasediag.run import data

    raw = data.prepare_fashion_mnist(data_folder(config.data_dir))  # the one command that creates a named folder
    data.load("fashion_mnist", config.data_dir)
    print(f"Fashion-MNIST ready in {raw.resolve()}")
    return 0


@command("saturation", SaturationConfig)
def saturation_command(config: SaturationConfig) -> int:
    from phasediag.reports import saturation

    api.check_data(config.run)
    uri = _tracking_uri() if config.log else None
    result = saturation.run_saturation(config)
    fit = result.curve[result.curve["in_fit"]]
    print(f"saturation: c_crit={result.c_crit:.4g} from {len(fit)} values of c in [{fit['c'].min():.4g}, {fit['c'].max():.4g}]"
          if len(fit) else "saturation: c_crit=nan (no value of c left to fit)")  # fmt: skip
    print(f"{result.n_diverged} of {len(result.table)} runs diverged: NaN, left out of the mean; the fit stops below "
          "the first c where any seed diverged" + (f" and at x <= {config.x_fit_max}" if config.x_fit_max is not None else ""))  # fmt: skip
    _wrote(config.out, result.files, sum(result.seconds.values()), result.run_id, f"; open with: {uri}")
    return 0


@command("saturation_widths", SaturationWidthsConfig)
def saturation_widths_command(config: SaturationWidthsConfig) -> int:
    from phasediag.reports import saturation_widths

    api.check_data(config.run)
    if config.log:
        _tracking_uri()
    result = saturation_widths.run_widths(config, config.widths)
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    _wrote(config.out, {**result.files, "": Path("w<width>")}, result.seconds, result.run_id)
    return 0


@command("longrun", LongrunConfig)
def longrun_command(config: LongrunConfig) -> int:
    from phasediag.reports import longrun

    api.check_data(config.run)
    if config.log:
        _tracking_uri()
    result = longrun.run_longrun(config, progress=lambda line: print(line, flush=True))
    _wrote(config.out, result.files, sum(result.seconds.values()), result.run_id)
    return 0


def _wrote(out: str | Path, files: dict[str, Path], seconds: float, run_id: str | None, where: str = "") -> None:
    """The closing lines of a report command: what it wrote, and the MLflow run that holds it."""
    print(f"wrote {out}/ ({', '.join(p.name for p in files.values())}) in {seconds:.1f} s")
    if run_id:
        print(f"logged as run {run_id} in experiment {_experiment_of(run_id)!r}{where}")


def _out(config: AnalysisConfig) -> Path | None:
    return None if config.out is None else Path(config.out)


def _report(what: str, result: Any) -> None:
    print(f"{what}: wrote {result.out}/ ({', '.join(p.name for p in result.files)})")
    if result.run_id:
        print(f"logged as analysis run {result.run_id} in experiment {_experiment_of(result.run_id)!r}")


@command("diagram", DiagramConfig)
def diagram_command(config: DiagramConfig) -> int:
    _report(f"diagram {config.experiment}", api.diagram_from(config))
    return 0


@command("trajectories", TrajectoriesConfig)
def trajectories_command(config: TrajectoriesConfig) -> int:
    _report("trajectories", api.trajectories_from(config))
    return 0


@command("claims", ClaimsConfig)
def claims_command(config: ClaimsConfig) -> int:
    from phasediag.reports import claims

    api.store_with_data()
    table, markdown, result = claims.claims(config.experiment, _out(config), config.log, config.saturation_experiment,
                                            config.uv_experiment)  # fmt: skip
    print(markdown)
    print(f"wrote {result.out}/claims.md and claims.csv" + (f"; logged as analysis run {result.run_id}" if result.run_id else ""))
    return 0


def build_parser() -> Any:
    """Every command's options, each described by its dataclass field's docstring; each command's help starts with
    what it does, an example, and where its results go (guide.py)."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    # the subcommands take the formatter and allow_abbrev from here; no abbreviations: --c must not mean --close
    parser = ArgumentParser(prog="phasediag", description=guide.OVERVIEW, exit_on_error=False,
                            formatter_class=guide.HelpFormatter, allow_abbrev=False)  # fmt: skip
    commands = parser.add_subcommands(dest="command")
    for name, (cls, _) in COMMANDS.items():
        sub = ArgumentParser(exit_on_error=False, description=guide.description(name, cls.__doc__))
        add_arguments(sub, cls)
        commands.add_subcommand(name, sub, help=cls.__doc__.splitlines()[0])
    return parser


def parse(argv: Sequence[str]) -> tuple[str, Any]:
    """The command's name and its validated dataclass; ConfigError (one line) on any bad input."""
    from jsonargparse import ArgumentError

    argv = list(argv)
    name = argv[0] if argv and argv[0] in COMMANDS else None
    cls = COMMANDS[name][0] if name else RunConfig
    if name:
        argv = [name, *normalize_argv(cls, argv[1:])]
    try:
        namespace = build_parser().parse_args(argv)
    except ArgumentError as error:
        raise ConfigError(one_line(error, cls)) from None
    given = [token[2:].split("=")[0] for token in argv[1:] if token.startswith("--")]
    return namespace.command, resolve(cls, namespace[namespace.command].as_dict(), given)


def main(argv: Sequence[str] | None = None) -> int:
    from phasediag import logs, signals

    signals.install()
    try:
        name, config = parse(sys.argv[1:] if argv is None else argv)
        logs.configure()
        return COMMANDS[name][1](config)
    except BaseException as error:
        stop = signals.interruption(error)
        if stop is not None:  # the runs are already KILLED with the signal as reason, the trial FAILED
            print(f"phasediag: {stop.reason}: re-run the same command to resume", file=sys.stderr)
            return stop.exit_code
        if _unfinished(error):
            return _fail(error, 1)
        if isinstance(error, ConfigError):  # bad input, an unusable store or dataset (DataError, TrackingError)
            return _fail(error, 2)
        lost = _outage(error)
        if lost is None:
            raise
        return _fail(lost, 2)


def _unfinished(error: BaseException) -> bool:
    """Work asked for is not done (trials of other workers still running): exit 1, not 2."""
    study = sys.modules.get("phasediag.search.study")
    return study is not None and isinstance(error, study.Unfinished)


def _outage(error: BaseException) -> Exception | None:
    """A lost tracking server as one line (None: some other error)."""
    tracking = sys.modules.get("phasediag.tracking")
    return None if tracking is None or not isinstance(error, Exception) else tracking.outage(error)


def _fail(error: BaseException, code: int) -> int:
    """One line on stderr; under `mlflow run`, the project run ends FAILED with it as a tag."""
    print(f"phasediag: error: {error}", file=sys.stderr)
    from phasediag import tracking

    try:
        tracking.fail_project_run(str(error))
    except Exception:  # the tracking store itself may be the bad input
        pass
    return code


if __name__ == "__main__":
    sys.exit(main())
