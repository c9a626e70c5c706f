"""SLURM: Lightning leaves the signals to the project inside a SLURM job; a sweep submitted as a job array to a real
SLURM (started here: tests/servers.py) gives the local launcher's constants, survives scancel, a time limit and a
resubmission, and `phasediag status` says where it stands."""

import math
import os
import re
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pytest
import yaml
from lightning.fabric.plugins.environments import LightningEnvironment

from phasediag.run import runner
from phasediag.run.config import RunConfig
from phasediag.vocabulary import CONSTANTS
from servers import slurm_cluster  # noqa: F401

TINY_RUN = {"arch": "fcn", "depth": "2", "width": "8", "dataset": "synthetic:1x4x4:64", "measure_examples": "32",
            "batch_size": "16", "steps": "3", "seed": "0"}  # fmt: skip


class _SeenDuringFit(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.environment = trainer._accelerator_connector.cluster_environment
        self.sigusr1 = signal.getsignal(signal.SIGUSR1)


def test_a_run_inside_a_slurm_job_leaves_the_signals_to_the_project(tmp_path, monkeypatch):
    """`srun` installed and the environment of a SLURM task: no "srun is available but not used" warning (an error
    under the suite's warnings-as-errors), no SLURM environment in Lightning, so no SIGUSR1 requeue handler of its own."""
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    for name, value in {"SLURM_NTASKS": "1", "SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "phasediag", "SLURM_PROCID": "0",
                        "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "node1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    before = signal.getsignal(signal.SIGUSR1)
    seen = _SeenDuringFit()
    init = runner.initialize(RunConfig.from_strings(TINY_RUN))
    runner.fit(init, runner.EarlyTraining(init.model, runner.LOSSES["mse"], 0.1), [seen])
    assert isinstance(seen.environment, LightningEnvironment)
    assert seen.sigusr1 == before


# --- a real SLURM (tests/servers.py starts munged, slurmctld and slurmd on this machine) ------------------------------

SPEC = {"experiment": "slurm_tiny", "vary": {"seed": [0, 1]},
        "fixed": {"arch": "fcn", "depth": 2, "width": 8, "dataset": "synthetic:1x4x4:128", "measure_examples": 64,
                  "batch_size": 32, "x_max": 7, "resolution": 0.25, "log_checkpoints": False}}  # fmt: skip


def _write_spec(folder: Path, **changes) -> Path:
    spec = {**SPEC, **changes}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def phasediag(monkeypatch, capsys):
    """`phasediag ARGV` in this process (no start-up: a few seconds each on two busy cores), under `env`'s tracking
    store and SLURM, in `folder` (where the SLURM tasks run too)."""
    from phasediag import cli

    def call(env: dict[str, str], folder: Path, *argv: str) -> Result:
        for name in ("MLFLOW_TRACKING_URI", "SLURM_CONF"):
            if name in env:
                monkeypatch.setenv(name, env[name])
        monkeypatch.chdir(folder)
        capsys.readouterr()
        code = cli.main(list(argv))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return call


@pytest.fixture
def cluster_env(slurm_cluster, postgres_url, tmp_path) -> dict[str, str]:
    """The documented cluster set-up on the private SLURM: tracking in PostgreSQL, the Optuna storage a journal file
    (the shared-filesystem choice); one thread per task."""
    env = {**slurm_cluster, "MLFLOW_TRACKING_URI": postgres_url, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    env["STORAGE"] = f"journal:///{tmp_path}/optuna.log"
    return env


def _searches(uri: str, experiment: str, monkeypatch) -> "pd.DataFrame":
    from phasediag import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return tracking.searches(experiment)


def _check_once(uri: str, experiment: str, monkeypatch) -> dict[str, dict[str, float]]:
    """Every search FINISHED with one parent run, no run left RUNNING, no c finished twice; its constants."""
    from phasediag import tracking

    found = _searches(uri, experiment, monkeypatch)
    assert found["study"].is_unique and set(found["status"]) == {"FINISHED"}, found[["study", "status"]]
    runs = tracking.runs(experiment)
    assert "RUNNING" not in set(runs["status"])
    finished = runs[runs["status"] == "FINISHED"]
    assert not finished.duplicated(["parent_run_id", "x"]).any()
    return {row["study"]: {c: None if math.isnan(row[c]) else row[c] for c in CONSTANTS} for row in found.to_dict("records")}


@pytest.mark.slow
def test_a_sweep_as_a_job_array_gives_the_local_constants(cluster_env, tmp_path, monkeypatch, phasediag):
    spec = _write_spec(tmp_path)
    started = time.monotonic()
    result = phasediag(cluster_env, tmp_path, "sweep", str(spec), "--launcher", "slurm", "--wait", "true",
                       "--storage", cluster_env["STORAGE"], "--slurm_time", "10")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "submitted as SLURM job" in result.stdout and f"logs in {tmp_path}/slurm/slurm_tiny/" in result.stdout
    assert "2/2 searches done" in result.stdout
    on_slurm = _check_once(cluster_env["MLFLOW_TRACKING_URI"], "slurm_tiny", monkeypatch)
    print(f"SLURM sweep: {time.monotonic() - started:.0f} s")
    local = tmp_path / "local"
    local.mkdir()
    env = {**cluster_env, "MLFLOW_TRACKING_URI": f"sqlite:///{local}/mlruns.db"}
    assert phasediag(env, local, "sweep", str(spec)).returncode == 0
    on_this_machine = _check_once(env["MLFLOW_TRACKING_URI"], "slurm_tiny", monkeypatch)
    print(f"constants: SLURM {on_slurm}, local {on_this_machine}")
    assert on_this_machine == on_slurm  # the same grid points, exactly


def _status(spec: Path, env: dict[str, str], monkeypatch):
    """`phasediag status` in this process (it polls), under the cluster's environment."""
    from phasediag.launchers.status import sweep_status
    from phasediag.search.sweep import SweepSpec

    for name in ("MLFLOW_TRACKING_URI", "SLURM_CONF"):
        monkeypatch.setenv(name, env[name])
    return sweep_status(SweepSpec.load(spec, {"storage": env["STORAGE"]}))


def _wait_until(what: str, check, timeout: float = 600, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(poll)
    return found


def _task(detail: str) -> str:
    return re.search(r"SLURM (\d+(?:_\d+)?)", detail).group(1)


@pytest.mark.slow
def test_a_cancelled_task_is_reported_failed_and_a_resubmission_finishes_it(cluster_env, tmp_path, monkeypatch, phasediag):
    """One task at a time: mid-way through the first search `status` says running / not started; scancel makes it
    failed (with why) while the other finishes, and status exits 1; the sweep submitted again runs only the
    cancelled search, resumed, and nothing is trained twice; status then exits 0."""
    from phasediag import tracking

    spec = _write_spec(tmp_path)
    submit = ["sweep", str(spec), "--launcher", "slurm", "--storage", cluster_env["STORAGE"]]
    result = phasediag(cluster_env, tmp_path, *submit, "--slurm_array_parallelism", "1")
    assert result.returncode == 0 and "2 of 2 searches submitted" in result.stdout, result.stderr[-3000:]

    def mid_search():
        status = _status(spec, cluster_env, monkeypatch)
        trained = (tracking.runs("slurm_tiny")["status"] == "FINISHED").any()
        return status if status.points[0].state == "running" and trained else None

    status = _wait_until("the first search to train a run", mid_search)
    assert status.points[1].state == "not started" and "PENDING" in status.points[1].detail
    subprocess.run(["scancel", _task(status.points[0].detail)], env=cluster_env, check=True, timeout=60)

    def settled():
        status = _status(spec, cluster_env, monkeypatch)
        return status if [p.state for p in status.points] == ["failed", "done"] else None

    status = _wait_until("the cancelled search failed and the other done", settled)
    assert "KILLED: stopped by SIGTERM" in status.points[0].detail and "CANCELLED" in status.points[0].detail
    shown = phasediag(cluster_env, tmp_path, "status", str(spec), "--storage", cluster_env["STORAGE"])
    assert shown.returncode == 1 and "1 done, 1 failed" in shown.stdout, shown.stdout + shown.stderr
    again = phasediag(cluster_env, tmp_path, *submit, "--wait", "true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 of 2 searches submitted" in again.stdout and "1 searches done already" in again.stdout
    _check_once(cluster_env["MLFLOW_TRACKING_URI"], "slurm_tiny", monkeypatch)
    shown = phasediag(cluster_env, tmp_path, "status", str(spec), "--storage", cluster_env["STORAGE"])
    assert shown.returncode == 0 and "2 done" in shown.stdout, shown.stdout + shown.stderr


def _scontrol(env: dict[str, str], *argv: str) -> str:
    return subprocess.run(["scontrol", *argv], env=env, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.mark.slow
def test_a_task_reaching_its_time_limit_is_requeued_and_resumes_its_search(cluster_env, tmp_path, monkeypatch, phasediag):
    """A grid search whose one point is held by a trial of 'another worker' (never beating, so never failed): the
    task trains every other point, then waits, and there its time limit is shortened. SLURM's warning (SIGUSR2)
    stops it cleanly and it is requeued; once the held point is released the requeued task trains only that point
    (the rest come from its ledger) and finishes. Holding a point makes the moment independent of the machine's
    speed: SLURM checks time limits every 30 s."""
    import optuna
    from optuna.distributions import IntDistribution

    from phasediag.search.storage import open_storage
    from phasediag.search.sweep import SweepSpec

    spec = _write_spec(tmp_path, vary={"seed": [0]}, fixed={**SPEC["fixed"], "mode": "grid", "x_min": 0})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cluster_env["MLFLOW_TRACKING_URI"])
    config = SweepSpec.load(spec, {"storage": cluster_env["STORAGE"]}).points[0]
    study = optuna.create_study(study_name=config.study_name, storage=open_storage(config.storage_url))
    held = 2  # x = 0.5: below any divergence, so the grid needs it
    study.enqueue_trial({"k": held})
    holder = study.ask({"k": IntDistribution(0, config.n_points - 1)})
    result = phasediag(cluster_env, tmp_path, "sweep", str(spec), "--launcher", "slurm", "--storage", cluster_env["STORAGE"],
                       "--slurm_time", "10")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    def waiting():  # every point but the held one trained, up to the first divergence
        done = {t.params["k"]: t.user_attrs["answers"]["max"] for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE}  # fmt: skip
        diverged = [k for k, answer in done.items() if answer]
        return diverged and set(done) == set(range(min(diverged) + 1)) - {held}

    _wait_until("the task to wait for the held point", waiting)
    task = _task(_status(spec, cluster_env, monkeypatch).points[0].detail)
    elapsed = _scontrol(cluster_env, "show", "job", task).split("RunTime=")[1].split()[0]  # [D-]HH:MM:SS
    minutes = sum(int(v) * m for v, m in zip(elapsed.split("-")[-1].split(":"), (60, 1, 1 / 60)))
    _scontrol(cluster_env, "update", f"JobId={task}", f"TimeLimit={int(minutes) + 2}")  # warned at the next check
    _wait_until("the requeue", lambda: "Restarts=1" in _scontrol(cluster_env, "show", "job", task), timeout=120)
    _scontrol(cluster_env, "update", f"JobId={task}", "TimeLimit=10")
    study.tell(holder, state=optuna.trial.TrialState.FAIL)  # the other worker gives the point up
    _wait_until("the search done", lambda: _status(spec, cluster_env, monkeypatch).points[0].state == "done")
    _check_once(cluster_env["MLFLOW_TRACKING_URI"], "slurm_tiny", monkeypatch)
    logs = Path(_status(spec, cluster_env, monkeypatch).logs, task)
    assert "stopped on SLURM's warning" in (logs / f"{task}_0_log.err").read_text()
    assert "Requeued job" in (logs / f"{task}_0_log.out").read_text()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.params["k"] for t in done) == list(range(len(done)))  # each grid point once, the held one too


@pytest.mark.slow
def test_status_of_a_local_sweep_reads_the_tracking_store(tiny_sweep, tmp_path, phasediag):
    """sweeps/tiny.yaml done by local workers: every point done with its constants, exit 0; the same spec with one
    more seed: that point not started, exit 1. Nothing is created by asking."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tiny_sweep["uri"]}
    shown = phasediag(env, tiny_sweep["folder"], "status", str(tiny_sweep["spec"]))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 5 and all(" done " in line and "c_loss=" in line for line in lines[:4]), shown.stdout
    assert lines[-1] == "sweep tiny: 4 done"
    bigger = yaml.safe_load(tiny_sweep["spec"].read_text())
    bigger["vary"]["seed"] = [*bigger["vary"]["seed"], 9]
    spec = tmp_path / "bigger.yaml"
    spec.write_text(yaml.safe_dump(bigger))
    before = sorted(p.name for p in Path(tiny_sweep["folder"]).iterdir())
    shown = phasediag(env, tiny_sweep["folder"], "status", str(spec))
    assert shown.returncode == 1 and shown.stdout.splitlines()[-1] == "sweep tiny: 4 done, 2 not started", shown.stdout
    assert sorted(p.name for p in Path(tiny_sweep["folder"]).iterdir()) == before


# --- options and refusals, without SLURM -----------------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["--launcher", "slurm", "--workers", "2"], "workers=2 is not allowed with launcher=slurm"),
    (["--slurm_time", "5"], "slurm_time is given but launcher=local"),
    (["--launcher", "slurm", "--slurm_additional", "qos"], "write KEY=VALUE"),
    (["--launcher", "slurm", "--slurm_time", "0"], "slurm_time=0 is not allowed"),
    (["--launcher", "slurm"], "is a SQLite file, which the nodes of a cluster job cannot share"),
])  # fmt: skip
def test_bad_slurm_options_are_one_line_and_create_nothing(store, tmp_path, capsys, argv, words):
    from phasediag import cli

    spec = _write_spec(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["sweep", str(spec), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_spec_slurm_mapping_is_checked_and_the_command_line_wins(tmp_path):
    from phasediag.run.config import ConfigError
    from phasediag.search.config import SlurmOptions
    from phasediag.search.sweep import SweepSpec

    spec = SweepSpec.load(_write_spec(tmp_path, slurm={"partition": "gpu", "time": 240, "additional": ["qos=high"]}))
    given = SlurmOptions(slurm_time=30, slurm_cpus_per_task=4)
    assert given.over(spec.slurm) == SlurmOptions(slurm_partition="gpu", slurm_time=30, slurm_cpus_per_task=4,
                                                  slurm_additional=("qos=high",))  # fmt: skip
    for bad, words in (({"tim": 3}, "key 'slurm.tim' is not allowed"), ({"gpus_per_task": -1}, "must be >= 0"),
                       ([1], "must be a mapping")):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(words)):
            SweepSpec.load(_write_spec(tmp_path, slurm=bad))


def test_queue_states_reads_squeue_then_sacct(tmp_path, monkeypatch):
    """squeue for the tasks it still lists (one line per array task), sacct for the others; neither: left out."""
    from phasediag.launchers.slurm import queue_states

    for name, lines in (("squeue", "12_0|RUNNING|None\\n12_1|PENDING|JobArrayTaskLimit"),
                        ("sacct", "12_2|CANCELLED by 0|0:15\\n12_0|COMPLETED|0:0")):  # fmt: skip
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\nprintf '{lines}\\n'\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert queue_states(["12_0", "12_1", "12_2", "12_3"]) == {
        "12_0": ("RUNNING", ""), "12_1": ("PENDING", "JobArrayTaskLimit"), "12_2": ("CANCELLED", "0:15")}


@pytest.mark.slow
def test_a_job_array_slurm_refuses_is_one_line_and_leaves_no_run(cluster_env, tmp_path, monkeypatch, phasediag):
    from phasediag import tracking

    spec = _write_spec(tmp_path)
    result = phasediag(cluster_env, tmp_path, "sweep", str(spec), "--launcher", "slurm", "--storage", cluster_env["STORAGE"],
                       "--slurm_partition", "nosuch")  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "SLURM refused the job array" in result.stderr and "partition" in result.stderr
    assert tracking.runs_of_kind("slurm_tiny", "sweep").empty
