"""Real services for end-to-end tests: a private PostgreSQL cluster and an `mlflow server`, both on 127.0.0.1 only.

    postgres_cluster  (session)  a throwaway cluster: initdb in a temp dir, trust auth, a free port
    postgres_url      (function) a fresh, empty database in it: postgresql+psycopg2://postgres@127.0.0.1:PORT/DB
    mlflow_server     (function) `mlflow server` on a free port with a private SQLite backend; returns its http URL
    free_port()                  a port nothing listens on (bound, then released)
    postgres_with_password (function) a cluster of its own whose TCP logins need a password (scram-sha-256); returns
                                 (url without password, password): clients get it from PGPASSWORD
    mlflow_auth_server (function) `mlflow server --app-name basic-auth` with a user of its own; returns (url, user,
                                 password, server folder): clients get them from MLFLOW_TRACKING_USERNAME / _PASSWORD
    slurm_cluster     (session)  munged, slurmctld and slurmd on 127.0.0.1 (one node, 2 CPUs); returns the environment
                                 (SLURM_CONF) for SLURM's commands; skips without root or without slurm-wlm and munge

Missing PostgreSQL binaries fail the test with a hint to run `make services` under CI (CI=true), else skip it.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("PHASEDIAG_PG_BIN", "/usr/lib/postgresql/15/bin"))
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 60  # seconds, for either server to answer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str) -> None:
    message = f"{what} not found: run `make services` (it installs PostgreSQL) to run the service tests"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root without `runuser`: cannot start PostgreSQL as the postgres user", pytrace=False)
    return [runuser, "-u", "postgres", "--", *argv]


def _run(argv: list[str], timeout: float, what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{what} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_cluster():
    """(host, port) of a private PostgreSQL cluster, stopped and deleted at the end of the session."""
    with running_postgres() as address:
        yield address


@contextlib.contextmanager
def running_postgres(password: str | None = None) -> Iterator[tuple[str, int]]:
    """A private cluster on 127.0.0.1 and a free port: trust logins, or with `password` the superuser's password
    required over TCP (scram-sha-256; it is given to initdb in a file, never on a command line)."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).is_file():
            _missing(f"PostgreSQL's {tool} ({PG_BIN / tool})")
    folder = Path(tempfile.mkdtemp(prefix="phasediag-pg-"))
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    port = free_port()
    started = False
    try:
        auth = ["--auth=trust"]
        if password is not None:
            (folder / "pwfile").write_text(password)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={folder / 'pwfile'}"]
        _run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), *auth, "-U", "postgres", "-E", "UTF8",
                           "--no-sync"]), 120, "initdb")  # fmt: skip
        (folder / "pwfile").unlink(missing_ok=True)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        _run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
                           "-t", str(START_TIMEOUT), "start", "-w"]), START_TIMEOUT + 10, "pg_ctl start")  # fmt: skip
        started = True
        yield "127.0.0.1", port
    finally:
        if started:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w", "-t", "30"]),
                           capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh database of its own in the session's cluster."""
    import psycopg2

    host, port = postgres_cluster
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres", connect_timeout=10)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"postgresql+psycopg2://postgres@{host}:{port}/{name}"


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server at {url} did not answer /health within {timeout:.0f} s: {log.read_text()[-2000:]}", pytrace=False)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def running_mlflow_server(store: str, folder: Path, port: int | None = None, app_name: str | None = None,
                          env: dict[str, str] | None = None) -> Iterator[str]:  # fmt: skip
    """`mlflow server` over `store` on 127.0.0.1 (a free port unless given), in its own process group, with an
    `--app-name` and more environment if given; yields its URL."""
    mlflow = VENV_BIN / "mlflow"
    if not mlflow.is_file():
        pytest.fail(f"{mlflow} not found: run `make setup`", pytrace=False)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_RUN_ID", None)
    argv = [str(mlflow), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", store, "--artifacts-destination", str(folder / "artifacts"),
            *(["--app-name", app_name] if app_name else [])]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        _wait_healthy(url, process, log, START_TIMEOUT)
        yield url
    finally:
        _stop(process)
    assert process.poll() is not None, "mlflow server still running"


@pytest.fixture
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with a private SQLite backend and artifact folder; yields http://127.0.0.1:PORT."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(f"sqlite:///{folder}/mlflow.db", folder) as url:
        yield url


def secret() -> str:
    return f"pw-{uuid.uuid4().hex}"


@pytest.fixture
def postgres_with_password() -> Iterator[tuple[str, str]]:
    """A cluster of its own that asks for a password over TCP, with one database; (url without password, password)."""
    import psycopg2

    password = secret()
    with running_postgres(password) as (host, port):
        connection = psycopg2.connect(host=host, port=port, user="postgres", password=password, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute('CREATE DATABASE "optuna"')
        connection.close()
        yield f"postgresql+psycopg2://postgres@{host}:{port}/optuna", password


AUTH_INI = """[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{folder}/basic_auth.db
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


@pytest.fixture
def mlflow_auth_server(tmp_path_factory) -> Iterator[tuple[str, str, str]]:
    """`mlflow server --app-name basic-auth` (its admin's password and the Flask secret from the environment, as
    docs/cluster.md starts it) and a user `worker` made by the admin; yields (url, "worker", the worker's password,
    the server's folder: its database mlflow.db, log and artifacts)."""
    import base64
    import json

    folder = tmp_path_factory.mktemp("mlflow-auth-server")
    (folder / "basic_auth.ini").write_text(AUTH_INI.format(folder=folder))
    admin, password = secret(), secret()
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"), "MLFLOW_AUTH_ADMIN_PASSWORD": admin,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secret()}  # fmt: skip
    with running_mlflow_server(f"sqlite:///{folder}/mlflow.db", folder, app_name="basic-auth", env=env) as url:
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/users/create", method="POST",
                                         data=json.dumps({"username": "worker", "password": password}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": "Basic " + base64.b64encode(f"admin:{admin}".encode()).decode()})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        yield url, "worker", password, folder


# --- SLURM -------------------------------------------------------------------------------------------------------------

SLURM_PACKAGES = "slurm-wlm and munge"
SLURM_DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
SLURM_NODE = "phasediag-node"
# A requeued job waits for its credential to expire (120 s by default) before it may start again: 5 s here.
SLURM_CONF = """ClusterName=phasediag
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SrunPortRange={srun_ports}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket,cred_expire=5
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=10
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={node} NodeHostname={hostname} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _slurm_missing() -> str | None:
    """Why a private SLURM cannot start here (None: it can)."""
    missing = [tool for tool in SLURM_DAEMONS if shutil.which(tool) is None and not Path("/usr/sbin", tool).is_file()]
    if missing:
        return f"{', '.join(missing)} not found: run `make services` as root (it installs {SLURM_PACKAGES})"
    if os.geteuid() != 0:
        return f"SLURM tests need root (slurmd runs jobs as their user, SlurmUser=root): {SLURM_PACKAGES} are installed"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _die_with_pytest() -> None:
    """In the daemon before exec: SIGTERM when the test process dies, so that a killed pytest leaves none behind."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start_daemon(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_pytest)  # fmt: skip


def _wait_for(check, process: subprocess.Popen, log: Path, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} did not start within {timeout:.0f} s: {log.read_text()[-2000:]}", pytrace=False)


def _node_idle(env: dict[str, str]) -> bool:
    result = subprocess.run([_tool("sinfo"), "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and result.stdout.strip() in ("idle", "mixed", "allocated")


@contextlib.contextmanager
def running_slurm(folder: Path) -> Iterator[dict[str, str]]:
    """munged (as the munge user), slurmctld and slurmd on 127.0.0.1 with a generated slurm.conf: one node with 2
    CPUs, private ports, socket, state and logs in `folder`; each daemon in its own process group, stopped by PID.
    Yields the environment for SLURM's commands (SLURM_CONF), which the jobs inherit."""
    import pwd

    munge_user = pwd.getpwnam("munge")
    (folder / "munge").mkdir(parents=True)
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir()
    os.chmod(folder / "munge", 0o711)
    os.chown(folder / "munge", munge_user.pw_uid, munge_user.pw_gid)
    key, socket_path = folder / "munge" / "munge.key", folder / "munge" / "munge.socket"
    as_munge = [_tool("runuser"), "-u", "munge", "--"]
    _run([*as_munge, _tool("mungekey"), "--create", f"--keyfile={key}"], 30, "mungekey")
    ports = [free_port() for _ in range(2)]
    srun_low = 40000 + (os.getpid() * 7) % 20000  # srun's own ports: a private range per session
    conf = folder / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), hostname=socket.gethostname(), node=SLURM_NODE,
                                      folder=folder, ctld_port=ports[0], d_port=ports[1],
                                      srun_ports=f"{srun_low}-{srun_low + 99}"))  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(conf)}
    processes: list[subprocess.Popen] = []
    try:
        munged = _start_daemon([*as_munge, _tool("munged"), "--foreground", "--force", f"--socket={socket_path}",
                                f"--key-file={key}", f"--pid-file={folder}/munge/munged.pid",
                                f"--seed-file={folder}/munge/munged.seed", f"--log-file={folder}/munge/munged.log"],
                               folder / "log" / "munged.out", env)  # fmt: skip
        processes.append(munged)
        _wait_for(socket_path.exists, munged, folder / "log" / "munged.out", "munged")
        for daemon, argv in (("slurmctld", ["-D", "-f", str(conf)]), ("slurmd", ["-D", "-f", str(conf), "-N", SLURM_NODE])):
            processes.append(_start_daemon([_tool(daemon), *argv], folder / "log" / f"{daemon}.out", env))
        _wait_for(lambda: _node_idle(env), processes[-1], folder / "log" / "slurmd.out", "slurmctld and slurmd")
        yield env
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A private one-node SLURM (see running_slurm) for the session; skips (or, under CI, fails) naming the packages
    when the daemons are missing or we are not root."""
    why = _slurm_missing()
    if why:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    folder = Path(tempfile.mkdtemp(prefix="phasediag-slurm-"))  # not under pytest's 0700 folder: munged must reach it
    os.chmod(folder, 0o711)
    try:
        with running_slurm(folder) as env:
            yield env
    finally:
        shutil.rmtree(folder, ignore_errors=True)
