"""Reliability as a user meets it (issue #11): each fault reproduced, and what must hold after it.

    1, 2  `mlflow run` and `phasediag` share one default store; resumes and bad input under `mlflow run`
    3     a killed sweep: the re-run waits for the dead worker's claims, finishes, exits 0; --wait false exits 1
    4     two processes on one search: one parent run; the diagram counts each (config, seed) once
    5     the tracking server goes away mid-sweep: bounded retries, one line per worker; a re-run completes
    6     SIGTERM -> 143, SIGINT -> 130: runs KILLED with the reason, the trial failed and retried
"""

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import lightning
import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, runs_of
from servers import free_port, running_mlflow_server

BIN = Path(sys.executable).parent
PHASEDIAG = str(BIN / "phasediag")
MLFLOW = str(BIN / "mlflow")
TINY = {"arch": "fcn", "depth": "3", "width": "16", "dataset": "synthetic:1x4x4:128", "measure_examples": "64",
        "batch_size": "32", "x_max": "7", "seed": "0", "log_checkpoints": "false"}  # fmt: skip
FAST = {"heartbeat": "1", "grace": "4"}  # a dead worker's trial is failed after 4 s
CONSTANTS = ("c_loss", "c_sharp", "c_max", "c_barrier")


def env_for(uri: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `mlflow run` calls `phasediag` by name
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def search_argv(experiment: str, **changes: str) -> list[str]:
    return [PHASEDIAG, "search", *[f"--{k}={v}" for k, v in {**TINY, **FAST, "experiment": experiment, **changes}.items()]]


def write_spec(folder: Path, experiment: str, **fixed: str) -> Path:
    spec = folder / f"{experiment}.yaml"
    values = {**{k: v for k, v in TINY.items() if k not in ("depth", "seed")}, **FAST, **fixed}
    spec.write_text(f"experiment: {experiment}\nfixed: {{{', '.join(f'{k}: {v!r}' for k, v in values.items())}}}\n"
                    "vary: {depth: [2, 3], seed: [0]}\n")  # fmt: skip
    return spec


def statuses(uri: str, experiment: str | None = None) -> Counter:
    return Counter((r.data.tags.get("phasediag.kind"), r.info.status) for r in runs_of(uri, experiment))


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]


def parents_constants(uri: str, experiment: str) -> dict[tuple[str, str], dict[str, float]]:
    """(depth, seed) -> the constants of each search parent in the experiment."""
    found = [r for r in runs_of(uri, experiment) if r.data.tags.get("phasediag.kind") == "search"]
    return {(r.data.params["depth"], r.data.params["seed"]): {c: r.data.metrics[c] for c in CONSTANTS} for r in found}


def same_constants(a: dict[str, float], b: dict[str, float]) -> None:
    for name in CONSTANTS:
        assert a[name] == pytest.approx(b[name], nan_ok=True) or (math.isnan(a[name]) and math.isnan(b[name])), name


# --- 1, 2: one default store; `mlflow run` never ends in a traceback ---------------------------------------------


@pytest.mark.slow
def test_mlflow_run_and_phasediag_share_the_default_store(tmp_path):
    """No MLFLOW_TRACKING_URI: `mlflow run -e search`, `phasediag search`, the `mlflow run` again, then bad input."""
    env = env_for(None)
    params = [f"-P{k}={v}" for k, v in {**TINY, **FAST, "experiment": "one"}.items()]
    mlflow_run = [MLFLOW, "run", REPO, "--env-manager", "local", "--experiment-name", "one", "-e", "search", *params]
    first = subprocess.run(mlflow_run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run(search_argv("one"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = subprocess.run(mlflow_run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    no_traceback(first.stderr + again.stderr + resumed.stderr)
    store = f"sqlite:///{tmp_path}/mlflow.db"  # MLflow's default: what `mlflow ui` opens with no arguments
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["mlflow.db", "optuna.db"]
    runs = runs_of(store, "one")
    (parent,) = [r for r in runs if r.data.tags.get("phasediag.kind") == "search"]
    assert parent.info.status == "FINISHED" and parent.data.tags.get("mlflow.source.type") == "PROJECT"
    continued = [r for r in runs if r.data.tags.get("phasediag.continues")]
    assert [r.data.tags["phasediag.continues"] for r in continued] == [parent.info.run_id]
    assert continued[0].info.status == "FINISHED"
    assert {r.info.status for r in runs} == {"FINISHED"}

    bad = subprocess.run([MLFLOW, "run", REPO, "--env-manager", "local", "--experiment-name", "one", "-P", "c=-1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode != 0
    no_traceback(bad.stderr)
    assert "phasediag: error: c=-1" in bad.stderr
    failed = [r for r in runs_of(store, "one") if r.info.status == "FAILED"]
    assert len(failed) == 1 and "c=-1" in failed[0].data.tags["phasediag.end_reason"]


# --- 3: an interrupted sweep ------------------------------------------------------------------------------------


def claims_of(storage: str, spec: Path):
    from phasediag.search.sweep import SweepSpec

    name = SweepSpec.load(spec).study_name
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    except KeyError:
        return []


@pytest.mark.slow
def test_killed_sweep_is_finished_by_the_rerun_and_nothing_stays_running(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    env = env_for(store)
    spec = write_spec(tmp_path, "killed")
    storage = f"sqlite:///{tmp_path}/optuna.db"
    sweep = subprocess.Popen([PHASEDIAG, "sweep", str(spec), "--workers", "2"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and sweep.poll() is None:  # one search done, the other one training
        time.sleep(0.3)
        states = Counter(t.state.name for t in claims_of(storage, spec))
        if states["COMPLETE"] >= 1 and states["RUNNING"] >= 1:
            break
    os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and its workers, like a lost machine
    sweep.wait()
    if Counter(t.state.name for t in claims_of(storage, spec))["RUNNING"] == 0:
        pytest.skip("the sweep finished before it could be killed mid-search")

    refused = subprocess.run([PHASEDIAG, "sweep", str(spec), "--wait", "false"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "RUNNING in another process" in refused.stderr and "wait" in refused.stderr
    no_traceback(refused.stderr)

    done = subprocess.run([PHASEDIAG, "sweep", str(spec)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2/2 searches done" in done.stdout
    assert "waiting for them" in done.stderr  # the visible message while the dead worker's claim goes stale
    kinds = statuses(store, "killed")
    assert kinds[("sweep", "FINISHED")] == 1 and sum(n for (k, _), n in kinds.items() if k == "sweep") == 1
    assert not [key for key in kinds if key[1] == "RUNNING"], kinds
    assert kinds[("search", "FINISHED")] == 2

    # The constants equal those of an uninterrupted sweep.
    clean = write_spec(tmp_path, "clean")
    assert subprocess.run([PHASEDIAG, "sweep", str(clean)], cwd=tmp_path, env=env, capture_output=True, timeout=600).returncode == 0
    killed, uninterrupted = parents_constants(store, "killed"), parents_constants(store, "clean")
    assert killed.keys() == uninterrupted.keys() and len(killed) == 2
    for point, constants in killed.items():
        same_constants(constants, uninterrupted[point])


def test_sweep_whose_search_fails_exits_non_zero_and_leaves_no_claim_running(store, tmp_path, capsys):
    """A point whose search fails on its data (measure_examples > examples): exit 2 both times, no claim RUNNING."""
    from phasediag import cli

    spec = write_spec(tmp_path, "broken", measure_examples="500")
    for _ in range(2):
        assert cli.main(["sweep", str(spec)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("phasediag: error: ") and "measure_examples=500" in err[-1]
        assert not [t for t in claims_of(f"sqlite:///{tmp_path}/optuna.db", spec) if t.state.name == "RUNNING"]
    assert not [r for r in runs_of(store) if r.info.status == "RUNNING"]


# --- 4: two processes on one search ----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_on_one_fresh_search_share_one_parent(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    env = env_for(store)
    both = [subprocess.Popen(search_argv("twice"), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in both]
    for process, (_, err) in zip(both, outputs):
        assert process.returncode == 0, err[-3000:]
        no_traceback(err)
    runs = runs_of(store, "twice")
    parents = [r for r in runs if r.data.tags.get("phasediag.kind") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert kids and {r.info.status for r in kids} == {"FINISHED"}
    assert len(kids) == len(runs) - 1 == int(parents[0].data.metrics["n_runs"])
    assert len({r.data.tags["phasediag.trial"] for r in kids}) == len(kids)


def test_diagram_counts_each_search_once_and_names_missing_seeds(store, caplog):
    """Two FINISHED parents of one study (an older version's double count) and a config missing a seed."""
    import logging

    from test_diagram import log_fake_search

    from phasediag import tracking
    from phasediag.reports import diagram

    for depth, width, seed in ((2, 8, 0), (2, 8, 0), (2, 8, 1), (2, 16, 0)):
        log_fake_search("dup", depth, width, seed, kids=False)
    with caplog.at_level(logging.WARNING, logger="phasediag.reports.diagram"):
        constants = diagram.finished_searches("dup")
    assert len(tracking.searches("dup")) == 4 and len(constants) == 3
    assert Counter(zip(constants["width"], constants["seed"])) == {(8, 0): 1, (8, 1): 1, (16, 0): 1}
    text = caplog.text
    assert "1 duplicate parent run(s) of 1 search(es)" in text
    assert "width=16: 1 of 2 seeds finished (missing 1)" in text and "width=8:" not in text


# --- 5: the tracking server goes away --------------------------------------------------------------------------


@pytest.mark.slow
def test_tracking_server_outage_fails_fast_in_one_line_per_worker_and_a_rerun_completes(tmp_path):
    folder = tmp_path / "server"
    folder.mkdir()
    backend = f"sqlite:///{folder}/mlflow.db"
    port = free_port()
    spec = write_spec(tmp_path, "outage")
    argv = [PHASEDIAG, "sweep", str(spec), "--workers", "2", "--storage", f"sqlite:///{tmp_path}/optuna.db"]
    with running_mlflow_server(backend, folder, port=port) as url:
        sweep = subprocess.Popen(argv, cwd=tmp_path, env=env_for(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)  # fmt: skip
        deadline = time.time() + 300
        while time.time() < deadline and sweep.poll() is None:
            time.sleep(0.3)
            if any(t.state.name == "COMPLETE" for t in claims_of(f"sqlite:///{tmp_path}/optuna.db", spec)):
                break
    stopped = time.monotonic()  # the server is gone
    out, err = sweep.communicate(timeout=300)
    if sweep.returncode == 0:
        pytest.skip("the sweep finished before the server was stopped")
    given_up = time.monotonic() - stopped
    assert sweep.returncode == 2, err[-3000:]
    no_traceback(err)
    lines = [line for line in err.splitlines() if line.startswith("phasediag: error:")]
    other = [line for line in err.strip().splitlines() if " phasediag.progress: " not in line]  # progress lines aside
    assert 1 <= len(lines) <= 3 and len(other) <= 3, err[-3000:]
    assert "stopped answering" in err
    print(f"gave up {given_up:.0f} s after the server stopped")

    with running_mlflow_server(backend, folder, port=port) as url:
        done = subprocess.run(argv, cwd=tmp_path, env=env_for(url), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        kinds = statuses(url, "outage")
    assert kinds[("search", "FINISHED")] == 2 and not [k for k in kinds if k[1] == "RUNNING"], kinds


def test_a_run_whose_server_stopped_answering_is_not_written_to_again(monkeypatch):
    """Ending the run on a dead server would retry for another RETRY_SECONDS at each level (child, search, sweep):
    the outage is passed up at once, and the next run of the command closes the runs."""
    from phasediag import tracking

    ended = []
    monkeypatch.setattr(tracking, "finish_run", lambda run_id, *how: ended.append((run_id, *how)))
    with pytest.raises(tracking.TrackingOutage), tracking.ended_on_error("lost"):
        raise tracking.TrackingOutage("tracking server stopped answering")
    with pytest.raises(ValueError), tracking.ended_on_error("failed"):
        raise ValueError("a bug")
    assert ended == [("failed", "FAILED", "ValueError: a bug")]


# --- 6: SIGTERM and SIGINT -------------------------------------------------------------------------------------


def test_a_signal_lost_in_a_finalizer_still_stops_the_next_run_and_step(monkeypatch):
    """A signal whose exception Python swallowed (it landed in a __del__, e.g. Lightning's Profiler being collected;
    found by this suite) stops the next run before it starts, and a run in progress at its next step."""
    from phasediag import signals
    from phasediag.run import runner
    from phasediag.run.config import RunConfig

    monkeypatch.setattr(signals, "_received", [])
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)  # Python would print the lost exception

    class Collected:
        def __del__(self) -> None:
            signals._handler(signal.SIGTERM, None)

    class LoseASignal(lightning.Callback):
        def on_train_batch_start(self, *args) -> None:
            Collected()

    init = runner.initialize(RunConfig(arch="fcn", depth=2, width=8, dataset="synthetic:1x4x4:64", measure_examples=32,
                                       batch_size=16, steps=4))  # fmt: skip
    Collected()
    with pytest.raises(signals.Interrupted) as caught:
        runner.train(init, 1.0)
    assert caught.value.exit_code == 143

    monkeypatch.setattr(signals, "_received", [])
    module = runner.EarlyTraining(init.model, runner.LOSSES["mse"], 1.0)
    with pytest.raises(BaseException) as caught:  # inside Trainer.fit Lightning turns the interrupt into exit(1)
        runner.fit(init, module, [LoseASignal()])
    assert signals.interruption(caught.value).exit_code == 143 and module.batch_losses and len(module.batch_losses) < 4


def test_a_signal_during_optunas_tell_is_raised_at_the_next_run_and_the_trial_is_recorded(monkeypatch):
    """A signal landing inside Optuna's tell (found by CI: Optuna then failed with UnboundLocalError and the trial
    stayed RUNNING) waits for the tell; the next trial's training raises it, and that trial is FAILED."""
    from phasediag import signals

    monkeypatch.setattr(signals, "_received", [])

    class SignalInTell(optuna.storages.InMemoryStorage):
        def set_trial_state_values(self, trial_id, state, values=None) -> bool:
            if state == optuna.trial.TrialState.COMPLETE:
                signals._handler(signal.SIGTERM, None)
            return super().set_trial_state_values(trial_id, state, values)

    def objective(trial: optuna.Trial) -> float:
        with signals.interruptible():  # where a search trains
            return trial.suggest_float("x", 0.0, 1.0)

    study = optuna.create_study(storage=SignalInTell())
    with pytest.raises(signals.Interrupted) as caught, signals.deferred():
        study.optimize(objective, n_trials=3)
    assert caught.value.exit_code == 143
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]

    monkeypatch.setattr(signals, "_received", [])
    with pytest.raises(signals.Interrupted), signals.deferred():  # the signal came after the last tell
        signals._handler(signal.SIGTERM, None)
    monkeypatch.setattr(signals, "_received", [])
    with pytest.raises(signals.Interrupted), signals.deferred(), signals.interruptible():  # inside our computation
        signals._handler(signal.SIGTERM, None)
        pytest.fail("the handler raises inside interruptible()")


def test_a_claim_is_never_left_without_its_run(store, tmp_path, monkeypatch):
    """A signal while the run is being claimed and created waits until its id is recorded (then the run is ended
    KILLED and a re-run joins it); an error withdraws the claim (a re-run claims again instead of waiting 304 s
    for it and failing: found by a SIGTERM stress test)."""
    from phasediag import signals, tracking
    from phasediag.search.study import claimed_run

    storage = f"sqlite:///{tmp_path}/optuna.db"
    monkeypatch.setattr(signals, "_received", [])

    def create_and_be_signalled() -> str:
        signals._handler(signal.SIGTERM, None)  # lands while the run is being created
        return tracking.start_run("claims", "search", {"a": 1})

    study = optuna.create_study(study_name="signalled", storage=storage)
    with pytest.raises(signals.Interrupted):
        claimed_run(study, storage, "parent_run_id", create_and_be_signalled, grace=1)
    run_id = study.user_attrs["parent_run_id"]
    assert MlflowClient(store).get_run(run_id).info.status == "KILLED"
    assert claimed_run(study, storage, "parent_run_id", lambda: pytest.fail("created twice"), grace=1) == (run_id, False)

    def create_and_fail() -> str:
        raise RuntimeError("the tracking store went away")

    monkeypatch.setattr(signals, "_received", [])
    study = optuna.create_study(study_name="failed", storage=storage)
    with pytest.raises(RuntimeError):
        claimed_run(study, storage, "parent_run_id", create_and_fail, grace=1)
    assert "failed:parent_run_id" not in optuna.get_all_study_names(storage)
    assert claimed_run(study, storage, "parent_run_id", lambda: "created by the re-run", grace=1) == ("created by the re-run", True)


def test_a_signal_while_the_results_are_written_ends_the_parent_killed(store, tmp_path, monkeypatch):
    """The parent run's last writes (its constants, FINISHED) are inside ended_on_error: a signal there ends it
    KILLED, not RUNNING (found by a SIGTERM stress test); the re-run writes them and finishes it."""
    from phasediag import signals, tracking
    from phasediag.search import study
    from phasediag.search.study import SearchConfig

    config = SearchConfig.from_strings({**TINY, **FAST, "experiment": "last", "storage": f"sqlite:///{tmp_path}/optuna.db"})
    monkeypatch.setattr(signals, "_received", [])
    log_metrics = tracking.log_metrics

    def signalled(run_id: str, metrics: dict) -> None:
        log_metrics(run_id, metrics)
        if "n_runs" in metrics:  # the parent's constants
            signals._handler(signal.SIGTERM, None)

    monkeypatch.setattr(tracking, "log_metrics", signalled)
    with pytest.raises(signals.Interrupted):
        study.search(config)
    (parent,) = [r for r in runs_of(store, "last") if r.data.tags.get("phasediag.kind") == "search"]
    assert parent.info.status == "KILLED" and "c_max" in parent.data.metrics

    monkeypatch.setattr(tracking, "log_metrics", log_metrics)
    monkeypatch.setattr(signals, "_received", [])
    assert study.search(config).parent_run_id == parent.info.run_id
    assert MlflowClient(store).get_run(parent.info.run_id).info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_kills_the_run_fails_the_trial_and_the_rerun_completes(tmp_path, signum, code):
    from phasediag.search.study import SearchConfig

    store = f"sqlite:///{tmp_path}/mlflow.db"
    env = env_for(store)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    longer = {"steps": "40"}  # a trial spends most of its time training, where the signal is meant to land
    name = SearchConfig.from_strings({**TINY, **FAST, **longer, "experiment": "sig"}).study_name

    def trials():
        try:
            return optuna.load_study(study_name=name, storage=storage).trials
        except KeyError:
            return []

    worker = subprocess.Popen(search_argv("sig", **longer), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and worker.poll() is None:  # a trial is training (its child run exists)
        time.sleep(0.2)
        if any(t.state.name == "RUNNING" and "run_id" in t.user_attrs for t in trials()):
            break
    worker.send_signal(signum)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == code, err[-3000:]
    no_traceback(err)
    assert signal.Signals(signum).name in err
    failed = [t for t in trials() if t.state.name == "FAIL"]
    assert failed and not [t for t in trials() if t.state.name == "RUNNING"]
    client = MlflowClient(store)
    killed = [r for r in runs_of(store, "sig") if r.info.status == "KILLED"]
    kinds = {r.data.tags.get("phasediag.kind") for r in killed}
    assert "search" in kinds and kinds <= {"run", "search"}  # the trial's child may have finished just before the signal
    assert all(r.data.tags["phasediag.end_reason"] == f"stopped by {signal.Signals(signum).name}" for r in killed)
    run_ids = {t.user_attrs.get("run_id") for t in failed}
    statuses = {r.info.run_id: r.info.status for r in runs_of(store, "sig")}
    assert run_ids and all(statuses.get(i) in ("KILLED", "FINISHED") for i in run_ids if i)  # none left RUNNING

    done = subprocess.run(search_argv("sig", **longer), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    redone = {t.params["k"] for t in trials() if t.state.name == "COMPLETE"}
    assert {t.params["k"] for t in failed if "k" in t.params} <= redone  # the killed trial's c was retried
    parent = client.get_run(optuna.load_study(study_name=name, storage=storage).user_attrs["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert not [r for r in runs_of(store, "sig") if r.info.status == "RUNNING"]
    clean = subprocess.run(search_argv("clean", **longer), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0
    (uninterrupted,) = parents_constants(store, "clean").values()
    same_constants({c: parent.data.metrics[c] for c in CONSTANTS}, uninterrupted)
