"""The Optuna storage: one claim per sweep point whatever the timing, the storage/tracking-store pair, the journal
file for clusters without a database server, and what a multi-node launcher refuses."""

import os
import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from conftest import PHASEDIAG, TINY, one_search_spec, runs_of
from phasediag.run.config import ConfigError


def two_workers(storage: str):
    """The claims study of sweeps/tiny.yaml opened twice, as two worker processes would (their own storage objects)."""
    from phasediag.search import sweep

    spec = sweep.SweepSpec.load(TINY, {"storage": storage})
    first = sweep._claims(spec)
    second = optuna.load_study(study_name=spec.study_name, storage=storage)
    return spec, first, second


def test_a_point_is_claimed_once_when_two_workers_pick_it_at_the_same_moment(store, tmp_path):
    """The interleaving that once trained a point twice: B's trial is older, both find point 0 free, A claims it,
    then B tries (the old rule 'the lower trial number wins', checked by A before B had written its point, let
    both through)."""
    from phasediag.search.sweep import claim_point, free_point

    spec, a, b = two_workers(f"sqlite:///{tmp_path}/optuna.db")
    trial_b, trial_a = b.ask(), a.ask()
    assert trial_b.number < trial_a.number
    assert free_point(a, spec, trial_a, poll=0.1) == free_point(b, spec, trial_b, poll=0.1) == 0
    assert claim_point(a, spec, trial_a, 0)
    assert not claim_point(b, spec, trial_b, 0)
    assert free_point(b, spec, trial_b, poll=0.1) == 1, "B goes on with the next point"

def test_a_failed_holder_frees_its_point_for_exactly_one_other_trial(store, tmp_path):
    from phasediag.search.sweep import claim_point

    spec, a, b = two_workers(f"sqlite:///{tmp_path}/optuna.db")
    holder = a.ask()
    assert claim_point(a, spec, holder, 2)
    waiting = b.ask()
    assert not claim_point(b, spec, waiting, 2), "taken while its holder runs"
    a.tell(holder, state=TrialState.FAIL)  # its worker died: Optuna failed it once its heartbeat stopped
    first, second = a.ask(), b.ask()
    assert [claim_point(a, spec, first, 2), claim_point(b, spec, second, 2)] == [True, False]
    a.tell(first, 2.0)
    assert not claim_point(b, spec, b.ask(), 2), "a finished point is never claimed again"


def sweep_cli(cwd, tracking_uri: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run([PHASEDIAG, "sweep", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("phasediag: error: "), result.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_a_journal_storage_resumes_and_belongs_to_one_tracking_store(tmp_path):
    """A one-search sweep on journal:///...: done, then done again without training (the same ledger); the same
    storage with another tracking store is refused in one line, and nothing is created there."""
    journal, spec = tmp_path / "shared" / "optuna.log", str(one_search_spec(tmp_path))
    journal.parent.mkdir()
    first, other = f"sqlite:///{tmp_path}/first.db", f"sqlite:///{tmp_path}/other.db"
    result = sweep_cli(tmp_path, first, spec, "--storage", f"journal://{journal}")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = len(runs_of(first, "tiny"))
    assert journal.is_file() and trained > 2
    again = sweep_cli(tmp_path, first, spec, "--storage", f"journal://{journal}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1/1 searches done" in again.stdout and len(runs_of(first, "tiny")) == trained

    size = journal.stat().st_size
    line = one_line_error(sweep_cli(tmp_path, other, spec, "--storage", f"journal://{journal}"))
    assert f"belongs to tracking store {first}" in line, line
    assert runs_of(other) == [] and journal.stat().st_size == size, "the refused sweep created something"


def test_a_storage_made_with_another_tracking_store_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """The check itself (the CLI test above runs it end to end on a journal): a database storage records the store
    it was first opened with; another one, however it is spelled, is refused."""
    from phasediag import tracking
    from phasediag.search.storage import check_pair

    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = optuna.storages.RDBStorage(url)
    monkeypatch.chdir(tmp_path)
    check_pair(storage, url, "sqlite:///mlruns.db")
    check_pair(storage, url, f"sqlite:///{tmp_path}/mlruns.db")  # the same file, written absolute
    with pytest.raises(tracking.TrackingError, match=f"belongs to tracking store sqlite:///{tmp_path}/mlruns.db, not http://host:5000"):
        check_pair(storage, url, "http://HOST:5000/")


def test_a_multi_node_launcher_refuses_files_the_nodes_cannot_share():
    from phasediag.search.storage import check_multi_node

    server, shared = "http://login01:5000", "journal:///shared/sweep/optuna.log"
    check_multi_node(shared, server)
    check_multi_node("postgresql+psycopg2://me@db01:5432/sweeps", server)
    for storage, uri, advice in [("sqlite:////shared/optuna.db", server, "--storage journal:///"),
                                 ("journal://optuna.log", server, "absolute"),
                                 (shared, "sqlite:////shared/mlruns.db", "mlflow server")]:  # fmt: skip
        with pytest.raises(ConfigError, match=advice) as error:
            check_multi_node(storage, uri)
        assert "\n" not in str(error.value)


def test_a_password_in_a_storage_or_tracking_url_is_refused_without_echoing_it(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns.db"}
    env.pop("MLFLOW_RUN_ID", None)
    argv = [PHASEDIAG, "sweep", str(TINY), "--storage", "postgresql+psycopg2://me:s3cret@127.0.0.1:1/db"]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "PGPASSWORD" in one_line_error(result) and "s3cret" not in result.stderr + result.stdout
    env["MLFLOW_TRACKING_URI"] = "http://me:s3cret@127.0.0.1:1"
    result = subprocess.run(argv[:3], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "MLFLOW_TRACKING_PASSWORD" in one_line_error(result) and "s3cret" not in result.stderr + result.stdout
    assert not list(tmp_path.iterdir()), "nothing may be created"
