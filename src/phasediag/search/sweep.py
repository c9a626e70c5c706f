"""A sweep: a YAML spec -> many searches (one per point of a product over depth, width, seed, ...), shared by any
number of workers on any number of machines through one Optuna study of claims (one trial = one search).

Spec:
    experiment: demo                 # MLflow experiment (and the name of the sweep's claim study)
    fixed: {arch: fcn, dataset: fashion_mnist, subset: 4096}     # any run or search parameter, except c
    vary:  {depth: [2, 4], width: [64, 128], seed: [0, 1, 2]}   # lists whose product gives the searches
"""

import dataclasses
import hashlib
import itertools
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from phasediag import signals, tracking
from phasediag.progress import bar as progress_bar
from phasediag.run.config import ConfigError
from phasediag.search.config import SearchConfig, SlurmOptions
from phasediag.search.storage import open_storage
from phasediag.search.study import (Unfinished, claimed_run, open_study, quiet_optuna, run_workers, search, wait_for,
                                    worker_exit_code)  # fmt: skip

log = logging.getLogger(__name__)
SPEC_KEYS = ("experiment", "fixed", "vary", "slurm")


@dataclass(frozen=True)
class SweepSpec:
    experiment: str
    points: tuple[SearchConfig, ...]
    source: str  # the spec's text, logged as an artifact
    slurm: SlurmOptions = SlurmOptions()  # how `--launcher slurm` submits it (the spec's `slurm:` mapping)

    @classmethod
    def load(cls, path: Path | str, overrides: dict[str, Any] | None = None) -> "SweepSpec":
        """Read and validate every point before anything runs; errors name the bad key or value."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"sweep spec {str(path)!r} does not exist")
        try:
            text = path.read_text()
            spec = yaml.safe_load(text)
        except UnicodeDecodeError:
            raise ConfigError(f"sweep spec {str(path)!r} is not a text file: give a YAML file like sweeps/tiny.yaml") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"sweep spec {str(path)!r} is not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(spec, dict):
            raise ConfigError(f"sweep spec {str(path)!r} must be a mapping with keys {', '.join(SPEC_KEYS)}")
        return cls.from_dict(spec, overrides, text, f"sweep spec {str(path)!r}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], overrides: dict[str, Any] | None = None, source: str | None = None,
                  where: str = "sweep spec") -> "SweepSpec":  # fmt: skip
        """The same from a mapping shaped like the YAML (the Python API's sweep); `source` is logged (default: the
        mapping as YAML); errors start with `where`."""
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(SPEC_KEYS)}")
        text = source if source is not None else yaml.safe_dump(dict(spec), sort_keys=False)
        unknown = set(spec) - set(SPEC_KEYS)
        if unknown:
            raise ConfigError(f"sweep spec key {sorted(unknown)[0]!r} is not allowed: use {', '.join(SPEC_KEYS)}")
        experiment = spec.get("experiment")
        if not isinstance(experiment, str) or not experiment:
            raise ConfigError(f"sweep spec key 'experiment' must be a non-empty name, got {experiment!r}")
        fixed, vary = spec.get("fixed") or {}, spec.get("vary") or {}
        for key, section in (("fixed", fixed), ("vary", vary)):
            if not isinstance(section, dict):
                raise ConfigError(f"sweep spec key {key!r} must be a mapping of parameter names")
        for name, values in vary.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"sweep spec key 'vary.{name}' must be a non-empty list, got {values!r}")
        for name in (*fixed, *vary):
            if name in ("c", "experiment", "storage", "workers"):
                raise ConfigError(f"sweep spec key {name!r} is not allowed in fixed/vary: the search chooses c, "
                                  "and experiment, storage and workers belong to the sweep")  # fmt: skip
        points, parsed = [], {}  # points that differ only in an integer seed share one parse (tens of ms each)
        for combination in itertools.product(*vary.values()):
            values = {**fixed, **dict(zip(vary, combination)), "experiment": experiment, **(overrides or {})}
            seed, rest = values.get("seed"), repr(sorted((k, v) for k, v in values.items() if k != "seed"))
            try:
                if rest in parsed and type(seed) is int:
                    points.append(dataclasses.replace(parsed[rest], run=dataclasses.replace(parsed[rest].run, seed=seed)))
                else:
                    points.append(SearchConfig.from_strings(values))  # the YAML's own types, checked as declared
                    parsed.setdefault(rest, points[-1])
            except ConfigError as error:
                raise ConfigError(f"{where}: {error}") from None
        return cls(experiment, tuple(points), text, SlurmOptions.from_spec(spec.get("slurm") or {}, where))

    @property
    def study_name(self) -> str:
        names = "|".join(p.study_name for p in self.points)
        return f"sweep-{self.experiment}-{hashlib.sha1(names.encode()).hexdigest()[:10]}"


def _claims(spec: SweepSpec) -> optuna.Study:
    """The study of claims: trial param 'point' = index of the search a worker took."""
    return open_study(spec.points[0], name=spec.study_name)


def _claimed(study: optuna.Study, exclude: int | None = None) -> list[FrozenTrial]:
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    return [t for t in study.get_trials(deepcopy=False, states=states) if "point" in t.params and t.number != exclude]


def _describe(trials: list[FrozenTrial]) -> str:
    return ", ".join(f"search {t.params.get('point', '?')} (worker {t.user_attrs.get('worker', '?')})" for t in trials)


def free_point(study: optuna.Study, spec: SweepSpec, trial: optuna.Trial, poll: float,
               points: Sequence[int] | None = None) -> int | None:  # fmt: skip
    """The first search (of `points`, default all) nobody has finished or is running (None: all are finished). While
    the rest are running in other workers, wait: they finish, or Optuna fails a claim silent for `grace` s and it is
    free again."""
    wanted = range(len(spec.points)) if points is None else points

    def check() -> tuple[bool, int | None, str]:
        claimed = [t for t in _claimed(study, exclude=trial.number) if t.params["point"] in wanted]
        taken = {t.params["point"] for t in claimed}
        free = [i for i in wanted if i not in taken]
        running = [t for t in claimed if t.state == TrialState.RUNNING]
        return bool(free) or not running, free[0] if free else None, _describe(running)

    return wait_for(study, spec.points[0].grace, poll, check)


def _claim_key(spec: SweepSpec, point: int, generation: int) -> str:
    return f"{spec.study_name}:point-{point}:{generation}"


def claim_point(study: optuna.Study, spec: SweepSpec, trial: optuna.Trial, point: int) -> bool:
    """Whether this trial now holds `point`; at most one live trial does, whatever the timing of the workers.
    The claim is the creation of the Optuna study `<sweep>:point-<i>:<generation>`, unique by name in the storage
    (a database's unique constraint, the journal's order); generation = the keys created so far for the point, so
    when its holder fails (its worker died: no heartbeat) the next key frees it for exactly one other trial.
    The keys are read before the trials, and a trial writes its point before creating its key: whoever sees a key
    also sees the trial that created it, RUNNING (taken), COMPLETE (done) or finished otherwise (free again)."""
    storage = open_storage(spec.points[0].storage_url)
    generation = 0
    while True:
        try:
            storage.get_study_id_from_name(_claim_key(spec, point, generation))
        except KeyError:
            break
        generation += 1
    if any(t.params["point"] == point for t in _claimed(study, exclude=trial.number)):
        return False
    trial.suggest_int("point", point, point)
    trial.set_user_attr("claim", generation)
    try:
        storage.create_new_study([StudyDirection.MINIMIZE], _claim_key(spec, point, generation))
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def work(spec: SweepSpec, on_done=None, poll: float = 2.0, points: Sequence[int] | None = None) -> int:
    """One worker: Study.optimize claims searches (one trial each, its heartbeat beating while the search runs)
    until every search (of `points`, default all) is finished; returns how many this worker finished. Two workers
    may pick the same point at the same moment: one claims it (claim_point), the other's trial is pruned and the worker goes on."""
    study = _claims(spec)
    finished = []

    def objective(trial: optuna.Trial) -> float:
        point = free_point(study, spec, trial, poll, points)
        if point is None:
            study.stop()
            raise optuna.TrialPruned("every search is finished")
        if not claim_point(study, spec, trial, point):
            raise optuna.TrialPruned(f"search {point} was claimed by another worker first")
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
        with signals.interruptible():
            result = search(spec.points[point])
        trial.set_user_attr("n_runs", result.n_runs)
        return float(point)

    def done(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            finished.append(trial.number)
            if on_done:
                on_done()

    while True:
        try:
            with quiet_optuna(), signals.deferred():
                study.optimize(objective, callbacks=[done])
            return len(finished)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # declared dead while alive (a late heartbeat); the search itself is complete and resumable


def progress(study: optuna.Study) -> tuple[int, int]:
    """(searches done, runs trained in them), from the claims."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return len({t.params["point"] for t in done}), sum(t.user_attrs.get("n_runs", 0) for t in done)


def _worker_process(spec: SweepSpec, threads: int) -> None:
    import torch

    from phasediag import logs

    logs.configure()
    signals.install()
    os.environ.pop("MLFLOW_RUN_ID", None)  # the `mlflow run` project run belongs to the main process
    torch.set_num_threads(threads)
    try:
        work(spec)
    except BaseException as error:
        sys.exit(worker_exit_code(error))


def sweep_run(spec: SweepSpec, study: optuna.Study, workers: int) -> str:
    """The sweep's MLflow run: one per sweep, created by the first process, continued by every later one."""

    def create() -> str:
        params = {"study": spec.study_name, "searches": len(spec.points), "workers": workers}
        run_id = tracking.start_run(spec.experiment, "sweep", params, run_name=spec.study_name)
        tracking.log_text(run_id, spec.source, "sweep.yaml")
        return run_id

    return claimed_run(study, spec.points[0].storage_url, "sweep_run_id", create, spec.points[0].grace)[0]


def sweep(spec: SweepSpec, workers: int = 1, poll: float = 2.0) -> tuple[int, int]:
    """Run the sweep with `workers` local processes (plus any other machine sharing the storage), until every
    search is finished (else it raises: Unfinished, a signal, a failed search)."""
    study = _claims(spec)
    left = [t for t in _claimed(study) if t.state == TrialState.RUNNING]
    if left:
        what = f"sweep {spec.experiment}: {len(left)} search(es) RUNNING in another process: {_describe(left)}"
        if not spec.points[0].wait:
            raise Unfinished(f"{what}; let them finish, or re-run with wait=true to wait up to {spec.points[0].grace} s for them")
        log.warning("%s; waiting for them (a dead worker's search is taken over after %d s without heartbeat)",
                    what, spec.points[0].grace)  # fmt: skip
    run_id = sweep_run(spec, study, workers)
    bar = progress_bar(total=len(spec.points), desc=f"sweep {spec.experiment}", unit="search")
    shown = [None]

    def refresh() -> None:
        done, runs = progress(study)
        if shown[0] != (done, runs):
            shown[0] = (done, runs)
            bar.n = done
            bar.set_postfix(runs=runs)

    with tracking.ended_on_error(run_id):  # from here to FINISHED: a signal anywhere ends the run KILLED
        tracking.set_status_running(run_id)
        refresh()
        workers = min(workers, len(spec.points) - bar.n)  # a finished sweep starts no worker at all
        if workers == 1:
            work(spec, on_done=refresh, poll=poll)
        elif workers > 1:
            run_workers(_worker_process, (spec,), workers, f"sweep {spec.experiment}", poll, refresh)
        refresh()
        bar.close()
        done, runs = finish_if_done(spec, study, run_id)
        if done < len(spec.points):
            raise Unfinished(f"sweep {spec.experiment}: {done}/{len(spec.points)} searches done; re-run it to finish the rest")
    return done, runs


def finish_if_done(spec: SweepSpec, study: optuna.Study, run_id: str) -> tuple[int, int]:
    """(searches done, runs trained); once every search is done, the sweep's run gets the totals and ends FINISHED
    (whichever process sees it first: a local sweep, or the last task of a SLURM array)."""
    done, runs = progress(study)
    if done == len(spec.points):
        tracking.log_metrics(run_id, {"searches_done": done, "runs_trained": runs})
        tracking.finish_run(run_id)
    return done, runs
