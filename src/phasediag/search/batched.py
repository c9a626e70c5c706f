"""The search with K points per round trained as one batched model (`batch_c` > 1), through Optuna's ask/tell.

Each round asks K trials; the LedgerSampler treats the trials already asked as running, so in grid mode they are
the next K points upward, and in bisection they split the open brackets as K workers would. The K points train
together (run.batched), then each is logged as its own child run and told. In grid mode the points above the
first divergence are not logged and their trials are pruned: the scan ends there, as the sequential one does.
"""

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import TrialState

from phasediag import signals
from phasediag.run import runner
from phasediag.run.batched import log_run, train_batched
from phasediag.search.ledger import Plan
from phasediag.search.config import SearchConfig
from phasediag.search.storage import open_storage
from phasediag.search.study import child_tags, ledger_of, open_study, full_barrier, outcome, sharpness_until, stale_trial_failed

log = logging.getLogger(__name__)


def ask_round(study: optuna.Study, config: SearchConfig, size: int) -> list[tuple[optuna.Trial, Plan]]:
    """Up to `size` new trials with their plans; fewer when the ledger has no more useful points right now."""
    asked: list[tuple[optuna.Trial, Plan]] = []
    for _ in range(size):
        trial = study.ask()
        k = trial.suggest_int("k", 0, config.n_points - 1)
        plan = ledger_of(study.get_trials(deepcopy=False), config, exclude=trial.number).plan(k)
        if plan is None or any(p.k == k for _, p in asked):  # nothing left to split, or a race with another worker
            study.tell(trial, state=TrialState.PRUNED)
            break
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        asked.append((trial, plan))
    return asked


@contextmanager
def heartbeats(config: SearchConfig, study: optuna.Study, trials: list[optuna.Trial]) -> Iterator[None]:
    """Beat the trials' heartbeats while they train, so that other workers do not fail them (Study.optimize does
    this for one trial; here several run at once)."""
    storage = open_storage(config.storage_url, config.heartbeat, config.grace, stale_trial_failed)
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = [storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in trials]
    stop = threading.Event()

    def beat() -> None:
        try:
            while True:
                try:
                    for trial_id in ids:
                        storage.record_heartbeat(trial_id)
                except Exception as error:  # a busy database: the next beat retries
                    log.warning("heartbeat not recorded: %s", error)
                if stop.wait(config.heartbeat):
                    return
        finally:
            if isinstance(storage, RDBStorage):
                storage.remove_session()  # this thread's connection

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def work_batched(config: SearchConfig, parent_run_id: str, init: runner.Initialization, size: int, poll: float = 1.0) -> None:
    """Rounds of `size` points trained as one batched model, until the ledger is complete. A signal stops the
    training at once, the asks and tells only between two of them."""
    study = open_study(config)
    with signals.deferred():
        while True:
            fail_stale_trials(study)
            ledger = ledger_of(study.get_trials(deepcopy=False), config)
            if ledger.complete:
                return
            if ledger.next_point() is None:  # only other workers' trials remain: wait for them (or for them to go stale)
                signals.sleep(poll)
                continue
            asked = ask_round(study, config, size)
            if asked:
                train_round(config, init, parent_run_id, study, asked)


def train_round(
    config: SearchConfig, init: runner.Initialization, parent_run_id: str, study: optuna.Study,
    asked: list[tuple[optuna.Trial, Plan]],
) -> None:  # fmt: skip
    plans = [plan for _, plan in asked]
    cs = [2.0 ** config.x(plan.k) for plan in plans]
    with heartbeats(config, study, [trial for trial, _ in asked]), signals.interruptible():
        results = train_batched(
            init, cs, sharpness=[p.sharpness for p in plans], barrier=[p.barrier for p in plans],
            sharpness_until=sharpness_until(config), full_barrier=full_barrier(config),
        )  # fmt: skip
    scan_over = False
    for (trial, plan), c, result in sorted(zip(asked, cs, results), key=lambda item: item[1]):
        if scan_over:  # grid: above the first divergence, the sequential scan never trains this point
            study.tell(trial, state=TrialState.PRUNED)
            continue
        run_config = dataclasses.replace(config.run, c=c, barrier=plan.barrier)
        run_id = log_run(run_config, init, result, parent_run_id, child_tags(config, plan.k, trial.number, parent_run_id))
        answers, margins = outcome(config, plan, result)
        for key, value in (("run_id", run_id), ("hvps", result.hvps), ("answers", answers), ("margins", margins)):
            trial.set_user_attr(key, value)
        study.tell(trial, config.x(plan.k))
        scan_over = config.mode == "grid" and result.diverged
