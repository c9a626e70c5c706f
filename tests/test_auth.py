"""Only the people who should get in: a sweep against `mlflow server --app-name basic-auth` and a PostgreSQL that
asks for a password, the credentials coming from the environment only."""

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PHASEDIAG, one_search_spec
from servers import mlflow_auth_server, postgres_with_password  # noqa: F401


def sweep(cwd: Path, env: dict[str, str], storage: str) -> subprocess.Popen:
    return subprocess.Popen([PHASEDIAG, "sweep", str(one_search_spec(cwd)), "--storage", storage], cwd=cwd, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def process_list() -> str:
    """Every process's command line, as `ps` shows them."""
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout


def every_row(connection, tables: list[str]) -> str:
    cursor = connection.cursor()
    rows = []
    for table in tables:
        cursor.execute(f'SELECT * FROM "{table}"')
        rows.extend(cursor.fetchall())
    return repr(rows)


def optuna_rows(storage: str, password: str) -> tuple[str, int]:
    """Everything in the Optuna database, as text, and its number of studies."""
    import psycopg2

    address, database = storage.split("@", 1)[1].split("/", 1)
    host, port = address.split(":")
    connection = psycopg2.connect(host=host, port=int(port), user="postgres", password=password, dbname=database)
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = [name for (name,) in cursor.fetchall()]
        studies = 0
        if "studies" in tables:
            cursor.execute("SELECT count(*) FROM studies")
            studies = cursor.fetchone()[0]
    text = every_row(connection, tables)
    connection.close()
    return text, studies


def experiments(server_folder: Path) -> list[str]:
    connection = sqlite3.connect(server_folder / "mlflow.db")
    names = [name for (name,) in connection.execute("SELECT name FROM experiments")]
    connection.close()
    return names


def tracking_rows(server_folder: Path) -> str:
    """Everything in the tracking server's own database (params, tags, inputs, experiments, ...) as text."""
    connection = sqlite3.connect(server_folder / "mlflow.db")
    tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    text = every_row(connection, tables)
    connection.close()
    return text


@pytest.mark.slow
def test_credentials_come_from_the_environment_and_go_nowhere_else(mlflow_auth_server, postgres_with_password, tmp_path):
    url, user, password, server_folder = mlflow_auth_server
    storage, pg_password = postgres_with_password
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": user, "PGPASSWORD": pg_password}
    env.pop("MLFLOW_RUN_ID", None)

    # Wrong credentials, for the tracking server and for the database: one line each, exit 2, nothing created.
    wrong = {"server": {**env, "MLFLOW_TRACKING_PASSWORD": "wrong"},
             "database": {**env, "MLFLOW_TRACKING_PASSWORD": password, "PGPASSWORD": "wrong"}}  # fmt: skip
    for what, wrong_env in wrong.items():
        (tmp_path / what).mkdir()
        started = time.monotonic()
        out, err = sweep(tmp_path / what, wrong_env, storage).communicate(timeout=120)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("phasediag: error: "), (what, err[-3000:])
        assert ("refused the credentials" if what == "server" else "password authentication failed") in lines[0], lines[0]
        print(f"wrong {what} credentials: refused in {time.monotonic() - started:.1f} s: {lines[0]}")
    assert optuna_rows(storage, pg_password)[1] == 0, "a study was created"
    assert experiments(server_folder) == ["Default"], "an experiment was created"

    # The right ones: the sweep finishes; meanwhile no command line shows either password.
    env["MLFLOW_TRACKING_PASSWORD"] = password
    process = sweep(tmp_path, env, storage)
    seen = []
    while process.poll() is None:
        seen.append(process_list())
        time.sleep(0.5)
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert "1/1 searches done" in out and len(seen) > 3
    secrets = (password, pg_password)
    for where, text in [("the process list", "".join(seen)), ("the command's output", out + err),
                        ("the tracking store", tracking_rows(server_folder)),
                        ("the Optuna storage", optuna_rows(storage, pg_password)[0])]:  # fmt: skip
        assert not [s for s in secrets if s in text], f"a password is in {where}"
    for path in [*tmp_path.rglob("*"), *server_folder.rglob("*")]:  # logs, artifacts (sweep.yaml, ...)
        if path.is_file() and path.suffix != ".db":
            assert not [s for s in secrets if s.encode() in path.read_bytes()], f"a password is in {path}"


def test_the_slurm_launcher_writes_no_credentials(monkeypatch, tmp_path):
    """What `--launcher slurm` hands to SLURM, the job script and the pickled task, holds no password: the tasks
    inherit the submitting shell's environment (sbatch's default --export=ALL)."""
    import pickle

    from conftest import TINY
    from phasediag.launchers import slurm
    from phasediag.search.config import SlurmOptions
    from phasediag.search.sweep import SweepSpec

    password = "pw-never-written-anywhere"
    for name in ("MLFLOW_TRACKING_PASSWORD", "PGPASSWORD"):
        monkeypatch.setenv(name, password)
    spec = SweepSpec.load(TINY, {"storage": "postgresql+psycopg2://alice@db01:5432/optuna"})
    script = slurm._executor(spec, SlurmOptions(), tmp_path)._make_submission_file_text("python -m submitit.core._submit", "0")
    assert "#SBATCH" in script and password not in script
    assert password.encode() not in pickle.dumps(slurm.SearchTask(spec, 1))
