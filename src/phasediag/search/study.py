"""The search over c for one (config, seed), driven by Optuna: the study is the ledger (one trial = one c = 2^x,
one MLflow child run), a sampler of ours proposes the next x, any number of workers share the study."""

import dataclasses
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
from phasediag import tracking
from phasediag.search.config import SearchConfig
from phasediag.physics.critical import trial_answers, trial_margins
from phasediag.search.ledger import Ledger, Plan

# We drive heartbeats ourselves (ask/tell loop) with Optuna's own heartbeat thread and stale-trial check.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


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
    tags = {tracking.SEARCH_TAG: config.study_name, tracking.X_TAG: f"{config.x(plan.k):.4f}"}
    with tracking.run(config.run.experiment, "run", runner.run_params(run_config), parent_run_id=parent_run_id, run_name=f"c={c:.4g}", tags=tags) as run_id:
        trial.set_user_attr("run_id", run_id)
        grid = config.mode == "grid"
        result = runner.train(
            init, c, sharpness=plan.sharpness, barrier=plan.barrier, sharpness_until=None if grid else 1.0 + config.sharp_eps
        )
        runner.log_result(run_id, init, result, config.run.log_checkpoints)
    loss_ratio = result.history["loss_ratio"].to_numpy()
    sharpness_ratio = result.history["sharpness_ratio"].to_numpy() if plan.sharpness else None
    barrier = result.barrier if plan.barrier else None
    answers = trial_answers(loss_ratio, sharpness_ratio, result.history["loss"].to_numpy(), barrier, config.sharp_eps)
    margins = trial_margins(loss_ratio, sharpness_ratio, answers["max"], config.sharp_eps)
    trial.set_user_attr("hvps", result.hvps)
    return answers, margins


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
        if config.workers == 1:
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
    tracking.set_tags(run_id, {tracking.NON_MONOTONE_TAG: ",".join(result.non_monotone) or "none"})
    tracking.finish_run(run_id)
    return result


def summarize(config: SearchConfig, study: optuna.Study, parent_run_id: str, lambda0: float) -> SearchResult:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ledger = ledger_of(trials, config)
    constants = ledger.constants(config.x)
    hvps = sum(t.user_attrs.get("hvps", 0) for t in trials)
    return SearchResult(config.study_name, parent_run_id, constants, lambda0, len(trials), hvps, ledger.non_monotone())
