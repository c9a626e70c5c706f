"""The search over c for one (config, seed), driven by Optuna: the study is the ledger (one trial = one c = 2^x,
one MLflow child run), a sampler of ours proposes the next x, any number of workers share the study."""

import dataclasses
import logging
import math
import multiprocessing
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from phasediag import progress, signals, tracking
from phasediag.run.batched import auto_batch_c
from phasediag.search.config import SearchConfig
from phasediag.physics.critical import trial_answers, trial_margins
from phasediag.run import runner
from phasediag.search.ledger import Ledger, Plan
from phasediag.search.storage import open_storage

log = logging.getLogger(__name__)
CLAIM_WAIT = 300  # s that a process joining a search waits (beyond the grace period) for the claimed parent run


class Unfinished(RuntimeError):
    """Work that this command was asked for is not done (trials of other workers still running); one line."""


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


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's heartbeat (RDBStorage's heartbeat_interval, the stale-trial check that Study.optimize runs before
    each trial) is marked experimental and warns on every call: the feature is what we need, the warning is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def stale_trial_failed(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna failed a trial whose worker stopped beating: its child run must not stay RUNNING forever."""
    if "run_id" in trial.user_attrs:
        reason = f"its worker {trial.user_attrs.get('worker', '?')} stopped (no heartbeat); the c is retried"
        tracking.finish_run(trial.user_attrs["run_id"], "KILLED", reason)


def open_study(config: SearchConfig, name: str | None = None) -> optuna.Study:
    """The search's study (or, with `name`, another study in the same storage), created or resumed. Its storage
    records each running trial's heartbeat; a trial silent for `grace` seconds is failed (its c is retried)."""
    # One line per trial is what the progress bar is for; a failed trial's error reaches the command line anyway.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = config.storage_url
    with quiet_optuna():
        storage = open_storage(url, config.heartbeat, config.grace, stale_trial_failed)  # checks the pair first
        try:
            return optuna.create_study(study_name=name or config.study_name, storage=storage,
                                       sampler=LedgerSampler(config), load_if_exists=True)  # fmt: skip
        except Exception as error:  # SQLAlchemy / driver errors vary by backend
            first_line = str(error).splitlines()[0][:200] if str(error) else ""
            raise tracking.TrackingError(f"Optuna storage {tracking.redact(url)!r} is unusable ({type(error).__name__}: {first_line})") from None


@dataclass
class SearchResult:
    study_name: str
    parent_run_id: str
    constants: dict[str, float]
    lambda0: float
    n_runs: int
    hvps: int
    non_monotone: list[str] = field(default_factory=list)
    batch_c: int = 1  # the points trained together per round, as resolved from SearchConfig.batch_c


def _claim(study: optuna.Study, storage_url: str, key: str, create: Callable[[], str]) -> str | None:
    """Claim the run (create the Optuna study `<study>:<key>`), create it and record its id; None when another
    process claimed it first. A claim without its id would hold later processes for CLAIM_WAIT s and then fail
    them (found by a SIGTERM stress test): a signal waits for all three, and an error withdraws the claim."""
    claim, run_id = f"{study.study_name}:{key}", None
    storage = open_storage(storage_url)
    try:
        with signals.deferred():
            try:
                with quiet_optuna():
                    optuna.create_study(study_name=claim, storage=storage)
            except optuna.exceptions.DuplicatedStudyError:
                return None
            try:
                run_id = create()
                study.set_user_attr(key, run_id)
            except Exception:
                optuna.delete_study(study_name=claim, storage=storage)  # the re-run claims it again
                raise
    except signals.Interrupted as stop:
        if run_id is not None:
            tracking.finish_run(run_id, "KILLED", stop.reason)
        raise
    return run_id


def claimed_run(study: optuna.Study, storage_url: str, key: str, create: Callable[[], str], grace: int) -> tuple[str, bool]:
    """The run whose id `study` keeps in its user attribute `key`, and whether this process created it. Exactly one
    process creates it, whatever the number of processes and machines: the claim is the creation of the Optuna
    study `<study>:<key>`, unique by name in the storage; the others wait for the id, then join as workers."""
    run_id = study.user_attrs.get(key)
    if run_id is None:
        run_id = _claim(study, storage_url, key, create)
        if run_id is not None:
            return run_id, True
    wait = grace + CLAIM_WAIT
    deadline = time.monotonic() + wait
    while run_id is None:  # another process claimed it a moment ago and is creating it
        if time.monotonic() > deadline:
            raise Unfinished(f"{study.study_name}: another process claimed its run but did not create it within {wait} s; "
                             f"if that process died, delete the Optuna study '{study.study_name}:{key}' and re-run")  # fmt: skip
        time.sleep(0.5)
        run_id = study.user_attrs.get(key)
    tracking.point_project_run(run_id)
    return run_id, False


def parent_run(config: SearchConfig, study: optuna.Study) -> tuple[str, bool]:
    """The search's MLflow parent run (one per search) and whether this process created it."""

    def create() -> str:
        params = {**config.identity(), "study": config.study_name}
        return tracking.start_run(config.run.experiment, "search", params, run_name=config.study_name,
                                  tags={tracking.SEARCH_TAG: config.study_name})  # fmt: skip

    return claimed_run(study, config.storage_url, "parent_run_id", create, config.grace)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _running(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def describe_running(trials: list[FrozenTrial], config: SearchConfig) -> str:
    items = []
    for t in trials:
        c = f"c={2.0 ** config.x(t.params['k']):.4g}, " if "k" in t.params else ""
        items.append(f"trial {t.number} ({c}worker {t.user_attrs.get('worker', '?')})")
    return ", ".join(items)


def refuse_or_announce_leftovers(config: SearchConfig, study: optuna.Study) -> None:
    """Trials left RUNNING by another process when this one starts: say so, and wait for them (they finish, or
    are failed once silent for `grace` s and retried here), or, with wait=False, stop with what is unfinished."""
    left = _running(study)
    if not left:
        return
    what = f"search {config.study_name}: {len(left)} trial(s) RUNNING in another process: {describe_running(left, config)}"
    if not config.wait:
        raise Unfinished(f"{what}; let them finish, or re-run with wait=true to wait up to {config.grace} s for them")
    log.warning("%s; waiting for them (a dead worker's trial is failed after %d s without heartbeat, then retried here)",
                what, config.grace)  # fmt: skip


def wait_for(study: optuna.Study, grace: int, poll: float, check: Callable[[], tuple[bool, Any, str]]) -> Any:
    """Poll check() -> (done, result, what is awaited) until done; meanwhile a bar 'waiting for ...' counts up to
    the grace period, and trials silent for `grace` s are failed (Optuna's stale-trial check)."""
    bar = None
    try:
        while True:
            done, result, what = check()
            if done:
                return result
            if bar is None:
                bar = tqdm(total=grace, desc=f"waiting for {what}"[:120], unit="s", disable=None, leave=False)
            signals.sleep(poll)
            bar.update(min(poll, bar.total - bar.n))
            with quiet_optuna():
                fail_stale_trials(study)
    finally:
        if bar is not None:
            bar.close()


def next_point(study: optuna.Study, config: SearchConfig, trial: optuna.Trial, poll: float) -> Ledger | None:
    """The ledger once it has a point for this trial to train (None: the search is complete). While only trials
    of other workers remain, wait for them: they finish, or Optuna fails them once silent for `grace` s."""

    def check() -> tuple[bool, Ledger | None, str]:
        ledger = ledger_of(study.get_trials(deepcopy=False), config, exclude=trial.number)
        if ledger.complete or ledger.next_point() is not None:
            return True, None if ledger.complete else ledger, ""
        return False, None, describe_running([t for t in _running(study) if t.number != trial.number], config)

    return wait_for(study, config.grace, poll, check)


def work(config: SearchConfig, parent_run_id: str, init: runner.Initialization | None = None, poll: float = 1.0,
         on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> None:  # fmt: skip
    """One worker: Study.optimize takes the next point from the shared ledger (LedgerSampler), trains it as a child
    run and records it, beating the trial's heartbeat; until the ledger is complete."""
    study = open_study(config)
    init = init or runner.initialize(config.run)

    def objective(trial: optuna.Trial) -> float:
        if next_point(study, config, trial, poll) is None:
            study.stop()
            raise optuna.TrialPruned("the search is complete: nothing to train")
        k = trial.suggest_int("k", 0, config.n_points - 1)
        plan = ledger_of(study.get_trials(deepcopy=False), config, exclude=trial.number).plan(k)
        if plan is None:  # another worker took k at the same moment
            raise optuna.TrialPruned(f"k={k} was taken by another worker")
        trial.set_user_attr("worker", _worker_name())
        answers, margins = run_point(config, init, parent_run_id, plan, trial)
        trial.set_user_attr("answers", answers)
        trial.set_user_attr("margins", margins)
        return config.x(k)

    while True:
        try:
            with quiet_optuna(), signals.deferred():
                study.optimize(objective, callbacks=[on_trial] if on_trial else None)
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # our heartbeat was late and another worker failed the trial: its c is retried, go on


def run_point(config: SearchConfig, init: runner.Initialization, parent_run_id: str, plan: Plan, trial) -> tuple[dict, dict]:
    """Train one c as a child run; measure only what the plan asks; return the four answers and the margins."""
    c = 2.0 ** config.x(plan.k)
    run_config = dataclasses.replace(config.run, c=c, barrier=plan.barrier)
    tags = child_tags(config, plan.k, trial.number, parent_run_id)
    with tracking.run(config.run.experiment, "run", runner.run_params(run_config), parent_run_id=parent_run_id, run_name=f"c={c:.4g}", tags=tags) as run_id:
        trial.set_user_attr("run_id", run_id)
        with signals.interruptible():
            result = runner.train(init, c, sharpness=plan.sharpness, barrier=plan.barrier, sharpness_until=sharpness_until(config),
                                  full_barrier=full_barrier(config))  # fmt: skip
        runner.log_result(run_id, init, result, config.run.log_checkpoints)
    trial.set_user_attr("hvps", result.hvps)
    return outcome(config, plan, result)


def child_tags(config: SearchConfig, k: int, trial_number: int, parent_run_id: str) -> dict[str, str]:
    """A child run's tags: its search, its x, its trial (to close it if the trial dies) and where theta_0 is."""
    tags = {tracking.SEARCH_TAG: config.study_name, tracking.X_TAG: f"{config.x(k):.4f}", tracking.TRIAL_TAG: str(trial_number)}
    if config.run.log_checkpoints:
        tags[tracking.THETA0_TAG] = f"runs:/{parent_run_id}/{tracking.THETA0_ARTIFACT}"
    return tags


def sharpness_until(config: SearchConfig) -> float | None:
    """The grid records whole sharpness trajectories; bisection only needs to know whether it increased."""
    return None if config.mode == "grid" else 1.0 + config.sharp_eps


def full_barrier(config: SearchConfig) -> bool:
    """The grid keeps each barrier's interpolation curve (its trajectories are the paper's figures); a bisection
    trial stops at the first point above L(theta_0): the answer is the same, most 'yes' cost a few points."""
    return config.mode == "grid"


def outcome(config: SearchConfig, plan: Plan, result: runner.RunResult) -> tuple[dict, dict]:
    """The four answers and the margins of a trained point, from what its plan measured."""
    loss_ratio = result.history["loss_ratio"].to_numpy()
    sharpness_ratio = result.history[f"{result.curvature}_ratio"].to_numpy() if plan.sharpness else None  # adam: P^-1 H
    barrier = result.barrier if plan.barrier else None
    answers = trial_answers(loss_ratio, sharpness_ratio, result.history["loss"].to_numpy(), barrier, config.sharp_eps)
    return answers, trial_margins(loss_ratio, sharpness_ratio, answers["max"], config.sharp_eps)


def worker_exit_code(error: BaseException) -> int:
    """A worker process's exit status for `error`, after one line on stderr: 128 + signal, 2 for a tracking
    outage, 1 otherwise (the traceback is kept for a bug)."""
    stop = signals.interruption(error)
    if stop is not None:
        return stop.exit_code
    lost = tracking.outage(error) or (error if isinstance(error, tracking.TrackingError) else None)
    if lost is not None:
        print(f"phasediag: error: worker {_worker_name()}: {lost}", file=sys.stderr, flush=True)
        return 2
    raise error


def run_workers(target: Callable, args: tuple, workers: int, what: str, poll: float, refresh: Callable[[], None]) -> None:
    """`workers` local processes (spawned, sharing the CPU cores) running target(*args, threads); `refresh` every
    `poll` s. A signal here is passed on to them; a worker that failed makes this fail, naming the exit codes."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=(*args, threads)) for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(poll)
            refresh()
    except BaseException as error:
        stop = signals.interruption(error)
        for process in processes:
            if process.is_alive() and stop is not None:
                os.kill(process.pid, stop.signum)
        for process in processes:
            process.join()
        raise
    codes = [p.exitcode for p in processes]
    if any(code != 0 for code in codes):
        signal_codes = [c for c in codes if c in (130, 143)]
        if signal_codes:
            raise signals.Interrupted(signal_codes[0] - 128)
        if all(code == 2 for code in codes if code != 0):
            raise tracking.TrackingOutage(f"{what}: {sum(c == 2 for c in codes)} worker(s) stopped (see above); "
                                         "re-run the same command to continue")  # fmt: skip
        raise RuntimeError(f"{what}: a worker failed (exit codes {codes})")


def _worker_process(config: SearchConfig, parent_run_id: str, threads: int) -> None:
    import torch

    from phasediag import logs

    logs.configure()
    signals.install()
    torch.set_num_threads(threads)
    try:
        work(config, parent_run_id)
    except BaseException as error:
        sys.exit(worker_exit_code(error))


def close_orphans(config: SearchConfig, study: optuna.Study, parent_run_id: str) -> None:
    """Child runs still RUNNING whose trial is not (its worker died, or lost the tracking server before its trial
    learnt the run id): found by their tags, ended KILLED with the reason."""
    alive = {str(t.number) for t in _running(study)}
    for run_id, trial in tracking.running_children(parent_run_id):
        if trial not in alive:
            tracking.finish_run(run_id, "KILLED", f"its worker stopped before trial {trial} finished; the c is retried")


def search(config: SearchConfig) -> SearchResult:
    """Run (or resume, or join) the search; `workers` local processes share it through the study."""
    study = open_study(config)
    refuse_or_announce_leftovers(config, study)
    run_id, created = parent_run(config, study)
    with tracking.ended_on_error(run_id):  # from here to FINISHED: a signal anywhere ends the run KILLED
        tracking.set_status_running(run_id)
        close_orphans(config, study, run_id)
        init = runner.initialize(config.run)
        if created:
            runner.log_inputs(run_id, init, config.run.log_checkpoints)
        bar = progress.bar(desc=f"search {config.study_name}", unit="trial")
        done = lambda *_: bar.update(len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) - bar.n)  # noqa: E731
        done()
        if bar.n:
            log.info("search %s resumed: %d trial(s) already done, not trained again", config.study_name, bar.n)
        batchable = config.workers == 1 and config.run.sharpness_method == "lanczos" and config.run.plain_sgd
        batch = config.batch_c or (auto_batch_c(init) if batchable else 1)
        if batch > 1:
            from phasediag.search.batched import work_batched  # it builds on this module

            work_batched(config, run_id, init, batch)
        elif config.workers == 1:
            work(config, run_id, init, on_trial=done)
        else:
            run_workers(_worker_process, (config, run_id), config.workers, f"search {config.study_name}", 1.0, done)
        bar.close()
        result = dataclasses.replace(summarize(config, study, run_id, init.lambda0.value), batch_c=batch)
        ledger = ledger_of(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), config)
        for hint in nan_hints(config, ledger, result.constants):
            log.warning("search %s: %s", config.study_name, hint)
        close_orphans(config, study, run_id)
        tracking.log_metrics(run_id, {"lambda0": result.lambda0, **result.constants, "n_runs": result.n_runs,
                                      "hvps": result.hvps, "non_monotone": float(bool(result.non_monotone))})  # fmt: skip
        tracking.set_tags(run_id, {tracking.NON_MONOTONE_TAG: ",".join(result.non_monotone) or "none"})
        tracking.finish_run(run_id)
    return result


def nan_hints(config: SearchConfig, ledger: Ledger, constants: dict[str, float]) -> list[str]:
    """Why constants are NaN, and the option to change: the grid [x_min, x_max] stopped below the divergence, or
    started above it."""
    missing = [k for k, v in constants.items() if not k.endswith("_censored") and math.isnan(v)]
    if not missing:
        return []
    if ledger.first_divergence() == 0:
        return [f"{', '.join(missing)} = NaN: the first c = 2^x_min = {2.0**config.x_min:.4g} diverged already; lower --x_min"]
    if ledger.first_divergence() >= ledger.n_points:
        return [f"{', '.join(missing)} = NaN: nothing diverged up to c = 2^x_max = {2.0**config.x_max:.4g}; raise --x_max"]
    return [f"{', '.join(missing)} = NaN: not reached below the divergence"]


def summarize(config: SearchConfig, study: optuna.Study, parent_run_id: str, lambda0: float) -> SearchResult:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ledger = ledger_of(trials, config)
    if not ledger.complete:  # e.g. the last trials of other workers failed after this worker stopped
        raise Unfinished(f"search {config.study_name} is not complete: re-run it to train what is missing")
    constants = ledger.constants(config.x)
    hvps = sum(t.user_attrs.get("hvps", 0) for t in trials)
    return SearchResult(config.study_name, parent_run_id, constants, lambda0, len(trials), hvps, ledger.non_monotone())
