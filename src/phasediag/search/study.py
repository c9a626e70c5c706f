"""The search over c for one (config, seed), driven by Optuna: the study is the ledger (one trial = one c = 2^x,
one MLflow child run), a sampler of ours proposes the next x, any number of workers share the study."""

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import FrozenTrial, TrialState

from phasediag.run import runner
from phasediag.run.batched import auto_batch_c
from phasediag import tracking
from phasediag.run.config import ConfigError, RunConfig, coerce
from phasediag.physics.critical import trial_answers, trial_margins
from phasediag.search.ledger import Ledger, Plan

optuna.logging.set_verbosity(optuna.logging.WARNING)
# We drive heartbeats ourselves (ask/tell loop) with Optuna's own heartbeat thread and stale-trial check.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
MODES = ("bisect", "grid")
CONSTANTS = ("c_loss", "c_sharp", "c_max", "c_barrier")


@dataclass(frozen=True)
class SearchConfig:
    run: RunConfig  # everything but c
    mode: str = "bisect"
    resolution: float = 0.1  # in x = log2 c
    x_min: float = -1.0
    x_max: float = 10.0
    x_start: float = 1.0  # bisect: the first x (c = 2: a quadratic model cannot catapult below it)
    gallop: float = 1.0  # bisect: step in x upward from the highest 'no' while no 'yes' is known above it ...
    gallop_near: float = 0.3  # ... once any transition has been seen (the constants sit close together)
    eps: float | None = None  # c_sharp threshold; None: 0, or 0.05 for centered / zero_readout outputs
    storage: str | None = None  # Optuna storage URL; None: optuna.db next to the tracking store
    workers: int = 1
    heartbeat: int = 10  # seconds between a running trial's heartbeats
    grace: int = 60  # a trial silent for this long is failed (its worker died) and its c is retried
    batch_c: int = 0  # c values trained together as one batched model; 0: 1 on CPU, from the memory on CUDA

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is not allowed: use one of {', '.join(MODES)}")
        if not (self.gallop > 0 and self.gallop_near > 0):
            raise ConfigError(f"gallop={self.gallop!r}, gallop_near={self.gallop_near!r} are not allowed: both must be > 0")
        if not 0 < self.resolution <= 1:
            raise ConfigError(f"resolution={self.resolution!r} is not allowed: it must be in (0, 1]")
        if not self.x_max > self.x_min:
            raise ConfigError(f"x_max={self.x_max!r} is not allowed: it must be > x_min={self.x_min!r}")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers!r} is not allowed: it must be >= 1")
        if self.batch_c < 0 or (self.batch_c > 1 and (self.workers > 1 or self.run.sharpness_method != "lanczos")):
            raise ConfigError(f"batch_c={self.batch_c!r} is not allowed here: use 0 (auto), 1, or > 1 with workers=1 and sharpness_method=lanczos")
        if self.heartbeat < 1 or self.grace <= self.heartbeat:
            raise ConfigError(f"heartbeat={self.heartbeat}, grace={self.grace}: need heartbeat >= 1 and grace > heartbeat")

    @property
    def n_points(self) -> int:
        return int(math.floor((self.x_max - self.x_min) / self.resolution + 1e-9)) + 1

    def x(self, k: int) -> float:
        return round(self.x_min + k * self.resolution, 10)

    def k(self, x: float) -> int:
        """The grid point nearest x, inside the grid."""
        return min(max(round((x - self.x_min) / self.resolution), 0), self.n_points - 1)

    def empty_ledger(self) -> Ledger:
        def steps(dx: float) -> int:
            return max(1, round(dx / self.resolution))

        return Ledger(self.n_points, self.mode, self.k(self.x_start), steps(self.gallop), steps(self.gallop_near))

    @property
    def sharp_eps(self) -> float:
        if self.eps is not None:
            return self.eps
        return 0.05 if self.run.output in ("centered", "zero_readout") else 0.0

    def identity(self) -> dict[str, Any]:
        """What defines the search (and so its study): not c, not where or how many workers run it."""
        run = {k: v for k, v in self.run.params().items() if k != "c"}
        return {**run, "mode": self.mode, "resolution": self.resolution, "x_min": self.x_min, "x_max": self.x_max,
                "x_start": self.x_start, "gallop": self.gallop, "gallop_near": self.gallop_near, "eps": self.sharp_eps}  # fmt: skip

    @property
    def study_name(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        r = self.run
        return f"{r.experiment}-{r.arch}-d{r.depth}-w{r.width}-s{r.seed}-{self.mode}-{digest}"

    @property
    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        uri = tracking.tracking_uri()
        folder = os.path.dirname(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else ""
        return f"sqlite:///{os.path.join(folder, 'optuna.db')}"

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "SearchConfig":
        """Split CLI strings into run fields and search fields (c is not a search parameter)."""
        run_fields = {f.name for f in dataclasses.fields(RunConfig)} - {"c"}
        run = RunConfig.from_strings({k: v for k, v in values.items() if k in run_fields})
        rest = {k: v for k, v in values.items() if k not in run_fields}
        types = {f.name: f.type for f in dataclasses.fields(cls) if f.name != "run"}
        unknown = set(rest) - set(types)
        if unknown:
            raise ConfigError(f"unknown parameter {sorted(unknown)[0]!r}: allowed are c-free run parameters and {', '.join(types)}")
        return cls(run=run, **coerce(cls, rest))


def ledger_of(trials: list[FrozenTrial], config: SearchConfig, exclude: int | None = None) -> Ledger:
    ledger = config.empty_ledger()
    for trial in trials:
        if trial.number == exclude or "k" not in trial.params:
            continue
        if trial.state == TrialState.COMPLETE:
            ledger.record(trial.params["k"], trial.user_attrs["answers"], trial.user_attrs.get("margins"))
        elif trial.state == TrialState.RUNNING:
            ledger.pending.add(trial.params["k"])
    return ledger


class LedgerSampler(optuna.samplers.BaseSampler):
    """Proposes the next grid index k from the trials so far (bisection, or the paper's upward grid)."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        ledger = ledger_of(study.get_trials(deepcopy=False), self.config, exclude=trial.number)
        k = ledger.next_point()
        return param_distribution.low if k is None else k  # None: a race with another worker; pruned unused


def _fail_child_run(study: optuna.Study, trial: FrozenTrial) -> None:
    """A worker died mid-trial: its MLflow child run must not stay RUNNING forever."""
    if "run_id" in trial.user_attrs:
        tracking.finish_run(trial.user_attrs["run_id"], failed=True)


def open_study(config: SearchConfig, name: str | None = None) -> optuna.Study:
    """The search's study (or, with `name`, another study in the same storage), created or resumed."""
    try:
        storage = RDBStorage(
            config.storage_url, heartbeat_interval=config.heartbeat, grace_period=config.grace,
            heartbeat_stale_trial_callback=_fail_child_run, engine_kwargs=_engine_kwargs(config.storage_url),
        )  # fmt: skip
    except Exception as error:  # SQLAlchemy / driver errors vary by backend
        first_line = str(error).splitlines()[0][:200] if str(error) else ""
        raise tracking.TrackingError(f"Optuna storage {tracking.redact(config.storage_url)!r} is unusable ({type(error).__name__}: {first_line})") from None
    return optuna.create_study(
        study_name=name or config.study_name, storage=storage, sampler=LedgerSampler(config), load_if_exists=True
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


@dataclass
class SearchResult:
    study_name: str
    parent_run_id: str
    constants: dict[str, float]
    lambda0: float
    n_runs: int
    hvps: int
    non_monotone: list[str] = field(default_factory=list)


def parent_run(config: SearchConfig, study: optuna.Study) -> str:
    """The search's MLflow parent run: created once, found again on resume (its id lives in the study)."""
    run_id = study.user_attrs.get("parent_run_id")
    if run_id:
        tracking.discard_project_run()  # an `mlflow run` resume: the first attempt's parent stays the parent
        return run_id
    params = {**config.identity(), "study": config.study_name}
    run_id = tracking.start_run(
        config.run.experiment, "search", params, run_name=config.study_name, tags={tracking.SEARCH_TAG: config.study_name}
    )
    study.set_user_attr("parent_run_id", run_id)
    return run_id


def work(config: SearchConfig, parent_run_id: str, init: runner.Initialization | None = None, poll: float = 1.0) -> None:
    """One worker: take the next point from the shared ledger, train it as a child run, record it; until done."""
    study = open_study(config)
    init = init or runner.initialize(config.run)
    while True:
        fail_stale_trials(study)
        ledger = ledger_of(study.get_trials(deepcopy=False), config)
        if ledger.complete:
            return
        if ledger.next_point() is None:  # only running trials remain; wait for them (or for them to go stale)
            time.sleep(poll)
            continue
        trial = study.ask()
        k = trial.suggest_int("k", 0, config.n_points - 1)
        plan = ledger_of(study.get_trials(deepcopy=False), config, exclude=trial.number).plan(k)
        if plan is None:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        with get_heartbeat_thread(trial._trial_id, study._storage):
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
            answers, margins = run_point(config, init, parent_run_id, plan, trial)
        try:
            trial.set_user_attr("answers", answers)
            trial.set_user_attr("margins", margins)
            study.tell(trial, config.x(k))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # our heartbeat was late and another worker declared the trial dead: its c is retried there


def run_point(config: SearchConfig, init: runner.Initialization, parent_run_id: str, plan: Plan, trial) -> tuple[dict, dict]:
    """Train one c as a child run; measure only what the plan asks; return the four answers and the margins."""
    c = 2.0 ** config.x(plan.k)
    run_config = dataclasses.replace(config.run, c=c, barrier=plan.barrier)
    with tracking.run(config.run.experiment, "run", runner.run_params(run_config), parent_run_id=parent_run_id, run_name=f"c={c:.4g}", tags=child_tags(config, plan.k)) as run_id:
        trial.set_user_attr("run_id", run_id)
        result = runner.train(init, c, sharpness=plan.sharpness, barrier=plan.barrier, sharpness_until=sharpness_until(config))
        runner.log_result(run_id, init, result, config.run.log_checkpoints)
    trial.set_user_attr("hvps", result.hvps)
    return outcome(config, plan, result)


def child_tags(config: SearchConfig, k: int) -> dict[str, str]:
    return {tracking.SEARCH_TAG: config.study_name, "phasediag.x": f"{config.x(k):.4f}"}


def sharpness_until(config: SearchConfig) -> float | None:
    """The grid records whole sharpness trajectories; bisection only needs to know whether it increased."""
    return None if config.mode == "grid" else 1.0 + config.sharp_eps


def outcome(config: SearchConfig, plan: Plan, result: runner.RunResult) -> tuple[dict, dict]:
    """The four answers and the margins of a trained point, from what its plan measured."""
    loss_ratio = result.history["loss_ratio"].to_numpy()
    sharpness_ratio = result.history["sharpness_ratio"].to_numpy() if plan.sharpness else None
    barrier = result.barrier if plan.barrier else None
    answers = trial_answers(loss_ratio, sharpness_ratio, result.history["loss"].to_numpy(), barrier, config.sharp_eps)
    return answers, trial_margins(loss_ratio, sharpness_ratio, answers["max"], config.sharp_eps)


def _worker_process(config: SearchConfig, parent_run_id: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    work(config, parent_run_id)


def search(config: SearchConfig) -> SearchResult:
    """Run (or resume, or join) the search; `workers` local processes share it through the study."""
    study = open_study(config)
    run_id = parent_run(config, study)
    tracking.set_status_running(run_id)
    try:
        init = runner.initialize(config.run)
        batch = config.batch_c or (auto_batch_c(init) if config.workers == 1 and config.run.sharpness_method == "lanczos" else 1)
        if batch > 1:
            from phasediag.search.batched import work_batched  # it builds on this module

            work_batched(config, run_id, init, batch)
        elif config.workers == 1:
            work(config, run_id, init)
        else:
            threads = max(1, (os.cpu_count() or 1) // config.workers)
            context = multiprocessing.get_context("spawn")
            processes = [context.Process(target=_worker_process, args=(config, run_id, threads)) for _ in range(config.workers)]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            if any(p.exitcode != 0 for p in processes):
                raise RuntimeError(f"a search worker failed (exit codes {[p.exitcode for p in processes]})")
        result = summarize(config, study, run_id, init.lambda0.value)
    except BaseException:
        tracking.finish_run(run_id, failed=True)
        raise
    tracking.log_metrics(run_id, {"lambda0": result.lambda0, **result.constants, "n_runs": result.n_runs,
                                  "hvps": result.hvps, "non_monotone": float(bool(result.non_monotone))})  # fmt: skip
    tracking.set_tags(run_id, {"phasediag.non_monotone": ",".join(result.non_monotone) or "none"})
    tracking.finish_run(run_id)
    return result


def summarize(config: SearchConfig, study: optuna.Study, parent_run_id: str, lambda0: float) -> SearchResult:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ledger = ledger_of(trials, config)
    constants = ledger.constants(config.x)
    hvps = sum(t.user_attrs.get("hvps", 0) for t in trials)
    return SearchResult(config.study_name, parent_run_id, constants, lambda0, len(trials), hvps, ledger.non_monotone())
