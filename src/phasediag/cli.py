"""`phasediag run|search|sweep|diagram|uv|data ...`: a thin layer that parses, validates and calls the package.

Bad input ends here as one line `phasediag: error: ...` and exit status 2, before any run is created.
"""

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from phasediag.run.config import ConfigError, RunConfig

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: `arguments` adds its options, the decorated function runs it."""

    def register(function: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (help, arguments, function)
        return function

    return register


def add_config_fields(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One --option per dataclass field, as strings; the dataclass converts and validates them."""
    for f in dataclasses.fields(cls):
        if f.name not in skip:
            parser.add_argument(f"--{f.name}", dest=f.name, default=None, help=f"default: {f.default!r}")


def config_values(args: argparse.Namespace, cls: type) -> dict[str, str]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


@command("run", "train one (c, depth, width, seed) run and log it to MLflow", lambda p: add_config_fields(p, RunConfig))
def run_command(args: argparse.Namespace) -> int:
    from phasediag.run import runner
    from phasediag import tracking

    config = RunConfig.from_strings(config_values(args, RunConfig))
    tracking.check_reachable()
    init = runner.initialize(config)
    run_id, result = runner.run_one(config, init)
    status = "diverged" if result.diverged else "finished"
    print(f"run {run_id} {status}: lambda0={init.lambda0.value:.6g} eta={result.eta:.4g} "
          f"max_loss_ratio={result.history['loss_ratio'].iloc[1:].max():.4g} hvps={result.hvps}")  # fmt: skip
    print(f"open it with: {tracking.ui_command()}")
    return 0


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    from phasediag.search.study import SearchConfig

    add_config_fields(parser, RunConfig, skip=("c",))
    add_config_fields(parser, SearchConfig, skip=("run",))


@command("search", "critical constants c_loss, c_sharp, c_max, c_barrier of one (config, seed)", _search_arguments)
def search_command(args: argparse.Namespace) -> int:
    from phasediag.search import study
    from phasediag import tracking

    values = {**config_values(args, RunConfig), **config_values(args, study.SearchConfig)}
    values.pop("run", None)
    config = study.SearchConfig.from_strings(values)
    tracking.check_reachable()
    result = study.search(config)
    constants = "  ".join(f"{k}={v:.4g}" for k, v in result.constants.items())
    print(f"search {result.study_name}: lambda0={result.lambda0:.6g}  {constants}  runs={result.n_runs} hvps={result.hvps}"
          + (f"  non-monotone: {', '.join(result.non_monotone)}" if result.non_monotone else ""))  # fmt: skip
    print(f"parent run {result.parent_run_id}; open with: {tracking.ui_command()}")
    return 0


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="a YAML file in sweeps/")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    parser.add_argument("--storage", default=None, help="Optuna storage URL shared by all workers (default: optuna.db next to the tracking store)")
    for name in ("data_dir", "accelerator", "wait"):  # where this worker runs, not what the sweep computes
        parser.add_argument(f"--{name}", default=None)


@command("sweep", "many searches from a YAML spec, shared by any number of workers", _sweep_arguments)
def sweep_command(args: argparse.Namespace) -> int:
    from phasediag.search import sweep
    from phasediag import tracking

    if args.workers < 1:
        raise ConfigError(f"workers={args.workers} is not allowed: it must be >= 1")
    overrides = {k: getattr(args, k) for k in ("storage", "data_dir", "accelerator", "wait") if getattr(args, k)}
    spec = sweep.SweepSpec.load(args.spec, overrides)
    tracking.check_reachable()
    done, runs = sweep.sweep(spec, args.workers)
    print(f"sweep {spec.experiment}: {done}/{len(spec.points)} searches done, {runs} runs trained in them")
    print(f"next: phasediag diagram --experiment {spec.experiment}   (or {tracking.ui_command()})")
    return 0


def _uv_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--widths", nargs="+", default=["2 4 8 16 32 64 128 256 512"], help="integers, or one quoted list")
    parser.add_argument("--inits", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c_step", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("out/uv"))
    parser.add_argument("--experiment", default="uv")
    parser.add_argument("--no-log", dest="log", action="store_false", help="write files only, no MLflow run")


@command("uv", "the uv model of Sec. 5: exact phase diagrams, Eq. (16), Figs. 7, 8, 10, 11", _uv_arguments)
def uv_command(args: argparse.Namespace) -> int:
    from phasediag import tracking
    from phasediag.reports import uv as uv_report

    try:
        args.widths = [int(w) for item in args.widths for w in item.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"widths={' '.join(args.widths)!r} is not a list of integers") from None
    if not args.widths or min(args.widths) < 1 or args.inits < 1 or args.steps < 1 or not args.c_step > 0:
        raise ConfigError("widths, inits and steps must be >= 1 and c_step > 0")
    if args.log:
        tracking.check_reachable()
    result = uv_report.run_uv(args.widths, args.inits, args.seed, args.c_step, args.steps, args.out, args.experiment, args.log)
    print(f"uv model: wrote {args.out}/ ({', '.join(sorted(p.name for p in args.out.iterdir()))})")
    if result.get("run_id"):
        print(f"logged as run {result['run_id']} in experiment {args.experiment!r}")
    return 0


def _uv_figures_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--widths", nargs="+", default=["2 8 32 128 512"], help="Fig. 12's widths: integers, or one quoted list")
    parser.add_argument("--inits", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=int, default=0, help="the initialisation of Fig. 9's trajectories")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("out/uv_figures"))
    parser.add_argument("--experiment", default="uv")
    parser.add_argument("--no-log", dest="log", action="store_false", help="write files only, no MLflow run")


@command("uv_figures", "the uv model's trajectories (Fig. 9) and per-init relations of the constants (Fig. 12)",
         _uv_figures_arguments)  # fmt: skip
def uv_figures_command(args: argparse.Namespace) -> int:
    from phasediag import tracking
    from phasediag.reports import uv_figures
    from phasediag.reports.saturation_widths import parse_widths

    widths = parse_widths(args.widths)
    if args.inits < 1 or args.steps < 1 or args.init < 0:
        raise ConfigError(f"inits={args.inits}, steps={args.steps}, init={args.init}: inits and steps must be >= 1, init >= 0")
    if args.log:
        tracking.check_reachable()
    result = uv_figures.run_uv_figures(list(widths), args.inits, args.seed, args.steps, args.out, args.experiment,
                                       args.log, args.init)  # fmt: skip
    print(result["fig9"].to_string(index=False))
    print(result["order"].to_string(index=False))
    print(f"uv figures: wrote {args.out}/ ({', '.join(p.name for p in result['files'].values())})")
    if result["run_id"]:
        print(f"logged as run {result['run_id']} in experiment {args.experiment!r}")
    return 0


@command("data", "prepare the offline Fashion-MNIST copy from Debian's dataset-fashion-mnist package",
         lambda p: p.add_argument("--data_dir", default="data"))  # fmt: skip
def data_command(args: argparse.Namespace) -> int:
    from phasediag.run import data

    data.load("fashion_mnist", args.data_dir)
    print(f"Fashion-MNIST ready in {Path(args.data_dir, 'FashionMNIST', 'raw').resolve()}")
    return 0



def _saturation_arguments(parser: argparse.ArgumentParser) -> None:
    from phasediag.reports.saturation import RUN_FIELDS_UNUSED, SaturationConfig

    add_config_fields(parser, RunConfig, skip=RUN_FIELDS_UNUSED)
    add_config_fields(parser, SaturationConfig, skip=("run", "seeds"))
    parser.add_argument("--seeds", nargs="*", default=None, help="integers, one quoted list, or a range 0..4 (default: 0 1 2)")
    parser.add_argument("--no-log", dest="log", action="store_false", help="write files only, no MLflow run")


@command("saturation", "intermediate saturation (Sec. 3, Fig. 5): <lambda_tau/lambda_0> against c, chi, chi', c_crit",
         _saturation_arguments)  # fmt: skip
def saturation_command(args: argparse.Namespace) -> int:
    from phasediag.reports import saturation
    from phasediag import tracking

    values = {**config_values(args, RunConfig), **config_values(args, saturation.SaturationConfig)}
    if args.seeds is not None:
        values["seeds"] = args.seeds
    config = saturation.SaturationConfig.from_strings(values)
    if args.log:
        tracking.check_reachable()
    result = saturation.run_saturation(config, log=args.log, progress=lambda line: print(line, flush=True))
    fit = result.curve[result.curve["in_fit"]]
    print(f"saturation: c_crit={result.c_crit:.4g} from {len(fit)} values of c in [{fit['c'].min():.4g}, {fit['c'].max():.4g}]"
          if len(fit) else "saturation: c_crit=nan (no value of c left to fit)")  # fmt: skip
    print(f"{result.n_diverged} of {len(result.table)} runs diverged: NaN, left out of the mean; the fit stops below "
          "the first c where any seed diverged" + (f" and at x <= {config.x_fit_max}" if config.x_fit_max is not None else ""))  # fmt: skip
    print(f"wrote {config.out}/ ({', '.join(p.name for p in result.files.values())}) in {sum(result.seconds.values()):.1f} s")
    if result.run_id:
        print(f"logged as run {result.run_id} in experiment {config.run.experiment!r}; "
              f"open with: {tracking.ui_command()}")  # fmt: skip
    return 0

def _saturation_widths_arguments(parser: argparse.ArgumentParser) -> None:
    _saturation_arguments(parser)
    parser.add_argument("--widths", nargs="+", required=True, help="integers, or one quoted list")


@command("saturation_widths", "Fig. 5: the saturation scan at several widths, overlaid, with c_crit and the FWHM of chi'",
         _saturation_widths_arguments)  # fmt: skip
def saturation_widths_command(args: argparse.Namespace) -> int:
    from phasediag.reports import saturation, saturation_widths
    from phasediag import tracking

    widths = saturation_widths.parse_widths(args.widths)
    values = {**config_values(args, RunConfig), **config_values(args, saturation.SaturationConfig)}
    if "width" in values:
        raise ConfigError("width is set by --widths here: leave --width out")
    if args.seeds is not None:
        values["seeds"] = args.seeds
    config = saturation.SaturationConfig.from_strings(values)
    if args.log:
        tracking.check_reachable()
    result = saturation_widths.run_widths(config, widths, log=args.log, progress=lambda line: print(line, flush=True))
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {config.out}/ ({', '.join(p.name for p in result.files.values())}, w<width>/) in {result.seconds:.1f} s")
    if result.run_id:
        print(f"logged as run {result.run_id} in experiment {config.run.experiment!r}")
    return 0


def _longrun_arguments(parser: argparse.ArgumentParser) -> None:
    from phasediag.reports.longrun import RUN_FIELDS_UNUSED

    add_config_fields(parser, RunConfig, skip=RUN_FIELDS_UNUSED)
    parser.add_argument("--cs", nargs="+", default=None, help="learning-rate constants (default: 1 2 4)")
    parser.add_argument("--epochs", default=None, help="default: 1000 (the paper's Fig. 1)")
    parser.add_argument("--out", default=None, help="default: out/longrun")
    parser.add_argument("--no-log", dest="log", action="store_false", help="write files only, no MLflow run")


@command("longrun", "long training with the paper's measurement schedule and the four regimes (Fig. 1)", _longrun_arguments)
def longrun_command(args: argparse.Namespace) -> int:
    from phasediag.reports import longrun
    from phasediag import tracking

    names = {"cs", "epochs", "out"}
    values = {**config_values(args, RunConfig), **{k: v for k, v in vars(args).items() if k in names and v is not None}}
    config = longrun.LongrunConfig.from_strings(values)
    if args.log:
        tracking.check_reachable()
    result = longrun.run_longrun(config, log=args.log, progress=lambda line: print(line, flush=True))
    print(f"wrote {config.out}/ ({', '.join(p.name for p in result.files.values())}) in {sum(result.seconds.values()):.1f} s")
    if result.run_id:
        print(f"logged as run {result.run_id} in experiment {config.run.experiment!r}")
    return 0


def _store_with_data() -> str:
    """The analysis commands read an existing store: a missing SQLite file is an error, not a new empty store."""
    from phasediag import tracking

    uri = tracking.check_reachable()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).expanduser().is_file():
        raise tracking.TrackingError(f"tracking store {uri!r} does not exist: run a sweep first, or set MLFLOW_TRACKING_URI")
    return uri


def _out(value: str | None) -> Path | None:
    return None if value in (None, "", "auto") else Path(value)


def _analysis_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", required=True, help="the MLflow experiment of the sweep")
    parser.add_argument("--out", default=None, help="folder for the PNG and CSV files (default: out/<experiment>)")
    parser.add_argument("--no-log", dest="log", action="store_false", help="write files only, no analysis run")


def _diagram_arguments(parser: argparse.ArgumentParser) -> None:
    _analysis_arguments(parser)
    parser.add_argument("--x", default="auto", help="width (y = 1/w, a panel per depth), depth (y = d, a panel per "
                        "width) or auto (width when several widths exist)")  # fmt: skip


@command("diagram", "phase diagram, relations and c_barrier of an experiment's searches (Figs. 3, 4, 6)", _diagram_arguments)
def diagram_command(args: argparse.Namespace) -> int:
    from phasediag.reports import diagram

    _store_with_data()
    _report(f"diagram {args.experiment}", diagram.diagram(args.experiment, args.x, _out(args.out), args.log), args.experiment)
    return 0


def _report(what: str, result, experiment: str) -> None:
    print(f"{what}: wrote {result.out}/ ({', '.join(p.name for p in result.files)})")
    if result.run_id:
        print(f"logged as analysis run {result.run_id} in experiment {experiment!r}")


def _trajectories_arguments(parser: argparse.ArgumentParser) -> None:
    _analysis_arguments(parser)
    parser.add_argument("--search", default=None, help="the search's parent run id or its study name "
                        "(may be left out when the experiment holds one search)")
    parser.add_argument("--c", nargs="*", default=None, help="the c values to show (trained ones, or one quoted "
                        "list; 'all': every run, at most 12 spread over c)")  # fmt: skip


@command("trajectories", "loss and sharpness against step, interpolated loss, for one search (Figs. 1, 2)",
         _trajectories_arguments)  # fmt: skip
def trajectories_command(args: argparse.Namespace) -> int:
    from phasediag.reports import diagram

    cs = None
    items = [v for item in (args.c or []) for v in item.replace(",", " ").split()]
    if items and items != ["all"]:
        try:
            cs = [float(v) for v in items]
        except ValueError:
            raise ConfigError(f"c={' '.join(items)!r} is not a list of numbers") from None
    _store_with_data()
    _report("trajectories", diagram.trajectories(args.experiment, args.search, cs, _out(args.out), args.log), args.experiment)
    return 0


def _claims_arguments(parser: argparse.ArgumentParser) -> None:
    _analysis_arguments(parser)
    parser.add_argument("--saturation_experiment", default=None, help="where to look for saturation runs (c_crit); "
                        "default: the same experiment")  # fmt: skip
    parser.add_argument("--uv_experiment", default=None, help="where to look for the uv job's run (phasediag uv); "
                        "default: the same experiment")  # fmt: skip


@command("claims", "check the paper's claims on an experiment's own data (claims.md)", _claims_arguments)
def claims_command(args: argparse.Namespace) -> int:
    from phasediag.reports import claims

    _store_with_data()
    table, markdown, result = claims.claims(args.experiment, _out(args.out), args.log, args.saturation_experiment,
                                            args.uv_experiment)
    print(markdown)
    print(f"wrote {result.out}/claims.md and claims.csv" + (f"; logged as analysis run {result.run_id}" if result.run_id else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phasediag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, arguments, function) in COMMANDS.items():
        arguments(sub.add_parser(name, help=help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from phasediag import signals
    from phasediag.run.data import DataError
    from phasediag.search.study import Unfinished
    from phasediag.tracking import TrackingError, fail_project_run, outage

    signals.install()
    try:
        return COMMANDS[args.command][2](args)
    except (ConfigError, DataError, TrackingError, Unfinished) as error:
        return _fail(error, 1 if isinstance(error, Unfinished) else 2, fail_project_run)
    except BaseException as error:
        stop = signals.interruption(error)
        if stop is not None:  # the runs are already KILLED with the signal as reason, the trial FAILED
            print(f"phasediag: {stop.reason}: re-run the same command to resume", file=sys.stderr)
            return stop.exit_code
        lost = outage(error)
        if lost is None:
            raise
        return _fail(lost, 2, fail_project_run)


def _fail(error: BaseException, code: int, fail_project_run: Callable[[str], None]) -> int:
    """One line on stderr; under `mlflow run`, the project run ends FAILED with it as a tag."""
    print(f"phasediag: error: {error}", file=sys.stderr)
    try:
        fail_project_run(str(error))
    except Exception:  # the tracking store itself may be the bad input
        pass
    return code


if __name__ == "__main__":
    sys.exit(main())
