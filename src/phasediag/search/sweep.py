"""A sweep: a YAML spec -> many searches (one per point of a product over depth, width, seed, ...), shared by any
number of workers on any number of machines through one Optuna study of claims (one trial = one search).

Spec:
    experiment: demo                 # MLflow experiment (and the name of the sweep's claim study)
    fixed: {arch: fcn, dataset: fashion_mnist, subset: 4096}     # any run or search parameter, except c
    vary:  {depth: [2, 4], width: [64, 128], seed: [0, 1, 2]}   # lists whose product gives the searches
"""

import hashlib
import itertools
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState
from tqdm import tqdm

from phasediag import tracking
from phasediag.run.config import ConfigError
from phasediag.search.config import SearchConfig
from phasediag.search.study import open_study, search

SPEC_KEYS = ("experiment", "fixed", "vary")


@dataclass(frozen=True)
class SweepSpec:
    experiment: str
    points: tuple[SearchConfig, ...]
    source: str  # the spec's text, logged as an artifact

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
        points = []
        for combination in itertools.product(*vary.values()):
            values = {**fixed, **dict(zip(vary, combination)), "experiment": experiment, **(overrides or {})}
            try:
                points.append(SearchConfig.from_strings(values))  # the YAML's own types, checked as declared
            except ConfigError as error:
                raise ConfigError(f"sweep spec {str(path)!r}: {error}") from None
        return cls(experiment, tuple(points), text)

    @property
    def study_name(self) -> str:
        names = "|".join(p.study_name for p in self.points)
        return f"sweep-{self.experiment}-{hashlib.sha1(names.encode()).hexdigest()[:10]}"


def _claims(spec: SweepSpec) -> optuna.Study:
    """The study of claims: trial param 'point' = index of the search a worker took."""
    return open_study(spec.points[0], name=spec.study_name)


def claim_next(study: optuna.Study, n_points: int) -> tuple[optuna.Trial, int] | None:
    """Take the first point nobody has finished or is running. Two workers may pick the same point at the same
    moment: the claim with the lower trial number wins, the other one is withdrawn and tries again."""
    while True:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        taken = {t.params["point"] for t in trials if "point" in t.params}
        free = [i for i in range(n_points) if i not in taken]
        if not free:
            return None
        trial = study.ask()
        trial.suggest_int("point", free[0], free[0])
        rivals = [
            t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
            if t.params.get("point") == free[0]
        ]  # fmt: skip
        if min(rivals) == trial.number:
            return trial, free[0]
        study.tell(trial, state=TrialState.PRUNED)


def work(spec: SweepSpec, on_done=None) -> int:
    """One worker: claim searches until none is left; returns how many this worker finished."""
    study = _claims(spec)
    finished = 0
    while (claimed := claim_next(study, len(spec.points))) is not None:
        trial, point = claimed
        with get_heartbeat_thread(trial._trial_id, study._storage):
            result = search(spec.points[point])
        try:
            trial.set_user_attr("n_runs", result.n_runs)
            study.tell(trial, float(point))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # declared dead while alive (a late heartbeat); the search itself is complete and resumable
        finished += 1
        if on_done:
            on_done()
    return finished


def progress(study: optuna.Study) -> tuple[int, int]:
    """(searches done, runs trained in them), from the claims."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return len(done), sum(t.user_attrs.get("n_runs", 0) for t in done)


def _worker_process(spec: SweepSpec, threads: int) -> None:
    import torch

    os.environ.pop("MLFLOW_RUN_ID", None)  # the `mlflow run` project run belongs to the main process
    torch.set_num_threads(threads)
    work(spec)


def sweep(spec: SweepSpec, workers: int = 1, poll: float = 2.0) -> tuple[int, int]:
    """Run the sweep with `workers` local processes (plus any other machine sharing the storage)."""
    study = _claims(spec)
    with tracking.run(spec.experiment, "sweep", {"study": spec.study_name, "searches": len(spec.points), "workers": workers},
                      run_name=f"sweep {spec.experiment}") as run_id:  # fmt: skip
        tracking.log_text(run_id, spec.source, "sweep.yaml")
        bar = tqdm(total=len(spec.points), desc=f"sweep {spec.experiment}", unit="search")

        shown = [None]

        def refresh() -> None:
            done, runs = progress(study)
            if shown[0] != (done, runs):
                shown[0] = (done, runs)
                bar.n = done
                bar.set_postfix(runs=runs)

        refresh()
        workers = min(workers, len(spec.points) - bar.n)  # a finished sweep starts no worker at all
        if workers == 1:
            work(spec, on_done=refresh)
        elif workers > 1:
            threads = max(1, (os.cpu_count() or 1) // workers)
            context = multiprocessing.get_context("spawn")
            processes = [context.Process(target=_worker_process, args=(spec, threads)) for _ in range(workers)]
            for process in processes:
                process.start()
            while any(p.is_alive() for p in processes):
                time.sleep(poll)
                refresh()
            if any(p.exitcode != 0 for p in processes):
                raise RuntimeError(f"a sweep worker failed (exit codes {[p.exitcode for p in processes]})")
        refresh()
        bar.close()
        done, runs = progress(study)
        tracking.log_metrics(run_id, {"searches_done": done, "runs_trained": runs})
    return done, runs
