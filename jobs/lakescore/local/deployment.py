"""A real local Airflow deployment on PostgreSQL, started and stopped from Python: what the
scheduler tests and ``bench/backfill.py`` run against.

* :func:`local_postgres`: PostgreSQL 15 from the Debian packages (``make system-deps``),
  ``initdb`` in a temp dir, listening on a free loopback port, run as the ``postgres`` user
  when we are root (PostgreSQL refuses to run as root); removed on exit.
* :func:`airflow_deployment`: ``airflow db migrate`` + the Spark pool (``prepare``), then the
  four components (api-server, scheduler, dag-processor, triggerer; LocalExecutor), each in
  its own process group on free ports, and, with ``driver=True``, the warm driver their
  validate/score tasks call (``lakescore driver`` on a free port, ``LAKESCORE_DRIVER_URL``);
  waited for until the api-server reports every component healthy, the driver answers and
  the DAGs asked for are parsed; on exit every process group is stopped (SIGTERM, then
  SIGKILL), the driver too, and any process left holding this ``AIRFLOW_HOME``. Without a
  driver, ``LAKESCORE_DRIVER_URL=off``: the tasks spark-submit whatever else runs here.

``make airflow`` (``lakescore airflow``) is the other local Airflow: ``airflow standalone``
on SQLite, for clicking through the UI. This one is for anything concurrent.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lakescore.local.airflow_local import airflow_bin, airflow_env, prepare, start_local_driver
from lakescore.local.processes import free_port, free_ports, stop_groups, wait_until

if TYPE_CHECKING:
    from lakescore.driver.process import DriverProcess

PG_BIN = Path(os.environ.get("LAKESCORE_PG_BIN", "/usr/lib/postgresql/15/bin"))
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
# The key of each component in /api/v2/monitor/health (the api-server's is the DB's).
HEALTH_KEYS = {
    "api-server": "metadatabase",
    "scheduler": "scheduler",
    "dag-processor": "dag_processor",
    "triggerer": "triggerer",
}
START_TIMEOUT_S = 240.0  # generous: a busy shared 2-core machine
STOP_TIMEOUT_S = 30.0  # task runners and api workers may outlive their leader briefly


# --------------------------------------------------------------------------- PostgreSQL


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the ``postgres`` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def postgres_missing() -> str | None:
    """Why :func:`local_postgres` cannot start here (None when it can)."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({PG_BIN}/initdb): run `make system-deps`"
    return None


@contextlib.contextmanager
def local_postgres(database: str = "airflow") -> Iterator[str]:
    """A throwaway PostgreSQL 15 server with an empty ``database``; yields its SQLAlchemy URL
    (``postgresql+psycopg2://postgres@127.0.0.1:<port>/<database>``, trust auth on loopback)."""
    if why := postgres_missing():
        raise RuntimeError(why)
    data = Path(tempfile.mkdtemp(prefix="lakescore-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    db = str(data / "db")
    run: dict[str, Any] = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    initdb = [str(PG_BIN / "initdb"), "-D", db, "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    started = False
    try:
        subprocess.run(_as_postgres(initdb), **run)
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
        start = [str(PG_BIN / "pg_ctl"), "-D", db, "-l", str(data / "log"), "-o", options]
        subprocess.run(_as_postgres([*start, "-w", "start"]), **run)
        started = True
        createdb = [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
        subprocess.run(_as_postgres([*createdb, "-U", "postgres", database]), **run)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            stop = [str(PG_BIN / "pg_ctl"), "-D", db, "-m", "fast", "-w", "stop"]
            subprocess.run(_as_postgres(stop), capture_output=True, timeout=120)
        shutil.rmtree(data, ignore_errors=True)


def query(db_url: str, sql: str, *params: Any) -> list[tuple]:
    """Rows of one SQL statement against the metadata DB (psycopg2, Airflow's own driver)."""
    import psycopg2

    dsn = db_url.replace("postgresql+psycopg2://", "postgresql://")
    # `with connection` commits but does not close: closing() does
    with contextlib.closing(psycopg2.connect(dsn)) as con, con, con.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


# --------------------------------------------------------------------------- Airflow


def get_json(url: str, token: str | None = None, timeout: float = 5) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def healthy(base_url: str, components: Sequence[str] = COMPONENTS) -> bool:
    """Does the api-server at ``base_url`` report ``components`` (and the metadata DB)
    healthy? ``/api/v2/monitor/health`` needs no login."""
    try:
        health = get_json(f"{base_url}/api/v2/monitor/health", timeout=2)
    except (OSError, ValueError):
        return False
    keys = {"metadatabase", *(HEALTH_KEYS[c] for c in components)}
    return all((health.get(k) or {}).get("status") == "healthy" for k in keys)


@dataclass
class AirflowDeployment:
    """A running deployment: its environment (for ``airflow`` CLI calls and anything that
    must see the same config), metadata DB, api-server URL and service logs."""

    home: Path
    env: dict[str, str]
    db_url: str
    base_url: str
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    driver: DriverProcess | None = None
    # Filled on exit: the process groups / pids that survived SIGKILL (should stay empty).
    survivors: list[str] = field(default_factory=list)

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``airflow <args>`` with the deployment's environment; RuntimeError (with the
        output's tail) when it fails."""
        out = subprocess.run(
            [airflow_bin(), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({out.returncode}):\n"
                + (out.stdout + out.stderr)[-3000:]
            )
        return out

    def query(self, sql: str, *params: Any) -> list[tuple]:
        return query(self.db_url, sql, *params)

    def dag_parsed(self, dag_id: str) -> bool:
        try:
            return bool(self.query("select 1 from dag where dag_id = %s", dag_id))
        except Exception:  # the DB is still migrating or restarting: not parsed yet
            return False

    def wait_for_dag(self, dag_id: str, timeout: float = START_TIMEOUT_S) -> None:
        wait_until(
            lambda: self.dag_parsed(dag_id),
            timeout,
            f"the dag-processor to parse {dag_id}",
            details=self.log_tails,
        )

    def dag_runs(self, dag_id: str) -> list[DagRunRow]:
        """Every run of ``dag_id``, oldest first (straight from the metadata DB)."""
        rows = self.query(
            "select run_id, state, conf, run_type, logical_date, start_date, end_date, "
            "backfill_id from dag_run where dag_id = %s order by id",
            dag_id,
        )
        return [DagRunRow(*row) for row in rows]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.query(
            "select task_id, state from task_instance where dag_id = %s and run_id = %s",
            dag_id,
            run_id,
        )
        return dict(rows)

    def log_tails(self, lines: int = 15) -> str:
        """The last ``lines`` lines of every component's log (for failure messages)."""
        return "".join(
            f"\n--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
            for f in sorted(self.logs.glob("*.log"))
        )

    def stop(self) -> list[str]:
        """Stop every component's process group, the driver, then any process still holding
        this ``AIRFLOW_HOME``; returns what survived SIGKILL."""
        self.survivors = [f"pgid {g}" for g in stop_groups(self.processes, timeout=STOP_TIMEOUT_S)]
        if self.driver is not None and self.driver.stop(timeout=STOP_TIMEOUT_S) is None:
            self.survivors.append(f"driver pgid {self.driver.process.pid}")
        stragglers = _processes_of(self.home)
        for process in stragglers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (left := _processes_of(self.home)) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.survivors += [f"pid {pid}" for pid in left]
        return self.survivors


@dataclass
class DagRunRow:
    run_id: str
    state: str
    conf: dict[str, Any] | None
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    backfill_id: int | None


def _processes_of(home: Path) -> list[int]:
    """Live (non-zombie) processes whose environment says ``AIRFLOW_HOME=<home>``: every
    process of the deployment carries it, whatever process group it ended up in."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except (OSError, IndexError):
            continue
        found.append(pid)
    return found


def deployment_env(
    home: Path, conf_dir: str | Path, db_url: str, extra: dict[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """The environment of every process of the deployment, and its api-server URL: free
    loopback ports (api-server, the worker's and triggerer's log servers, whose fixed
    defaults clash with any other local Airflow), fresh secrets, quick heartbeats, DAGs
    paused at creation (nothing runs until asked), and the DAG file parsed once: it does not
    change while the deployment runs, and each parse is a process start on 2 cores."""
    port, worker_logs, trigger_logs = free_ports(3)
    base_url = f"http://127.0.0.1:{port}"
    settings = {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "900",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # No driver unless one is started for this deployment (a driver of another local
        # Airflow may answer on the default port: it would refuse our conf, but stay out).
        "LAKESCORE_DRIVER_URL": "off",
        **(extra or {}),
    }
    return airflow_env(home, conf_dir=conf_dir, db_url=db_url, extra=settings), base_url


@contextlib.contextmanager
def airflow_deployment(
    home: str | Path,
    conf_dir: str | Path,
    *,
    db_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    dags: Sequence[str] = (),
    components: Sequence[str] = COMPONENTS,
    driver: bool = False,
    start_timeout: float = START_TIMEOUT_S,
) -> Iterator[AirflowDeployment]:
    """Airflow's components on PostgreSQL (``db_url``, else a :func:`local_postgres` of its
    own) with the lakescore DAGs of ``conf_dir``, rooted at ``home``, and with ``driver`` the
    warm driver the tasks call; yields once every component is healthy, the driver answers
    and ``dags`` are parsed; stops everything on exit (what survived is in
    ``deployment.survivors``)."""
    home = Path(home).resolve()
    with contextlib.ExitStack() as stack:
        if db_url is None:
            db_url = stack.enter_context(local_postgres())
        env, base_url = deployment_env(home, conf_dir, db_url, extra_env)
        prepare(env)
        logs = home / "logs-services"
        logs.mkdir(parents=True, exist_ok=True)
        deployment = AirflowDeployment(home, env, db_url, base_url, logs)
        try:
            if driver:  # it warms up (JVM, imports) while Airflow starts
                deployment.driver = start_local_driver(env, logs, port=free_port())
            for component in components:
                log = stack.enter_context((logs / f"{component}.log").open("w"))
                deployment.processes.append(_start(component, env, log))
            _wait_healthy(deployment, start_timeout)
            if deployment.driver is not None:
                deployment.driver.wait_ready(start_timeout)
            for dag_id in dags:
                deployment.wait_for_dag(dag_id, start_timeout)
            yield deployment
        finally:
            deployment.stop()


def _start(component: str, env: dict[str, str], log: IO[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [airflow_bin(), component],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_healthy(deployment: AirflowDeployment, timeout: float) -> None:
    def up() -> bool:
        for process in deployment.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow {process.args[1]} exited with {process.returncode}:"
                    + deployment.log_tails(40)
                )
        return healthy(deployment.base_url, [p.args[1] for p in deployment.processes])

    wait_until(up, timeout, "Airflow to be healthy", details=deployment.log_tails)
