"""A real local Airflow for UI tests: ``lakescore airflow`` (standalone, SQLite) on free ports,
in its own process group, healthy and signed in, stopped and checked for leftovers afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from lakescore.local.airflow_local import admin_password
from lakescore.local.deployment import get_json, healthy
from tests.support.processes import free_ports, group_alive, signal_group, wait_until

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240  # generous: a busy 2-core machine
STOP_TIMEOUT_S = 20


@dataclass
class LocalAirflow:
    base_url: str
    home: Path
    log: Path
    password: str
    token: str

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def post_json(url: str, body: dict, token: str | None = None, timeout: float = 10) -> object:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _deployment_processes(home: Path) -> list[psutil.Process]:
    """Every live process started for the Airflow rooted at ``home``: all of them carry
    ``AIRFLOW_HOME=<home>`` (set by airflow_env), whatever process group they are in."""
    marker = str(home)
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get("AIRFLOW_HOME") == marker:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def _stop(process: subprocess.Popen, home: Path) -> list[str]:
    """SIGTERM the CLI's process group and every group holding a process of this deployment,
    SIGKILL what is left after STOP_TIMEOUT_S; returns a description of the survivors."""
    groups = {process.pid}
    for child in _deployment_processes(home):
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(child.pid))

    def left() -> list[str]:
        alive = [f"pgid {g}" for g in sorted(groups) if group_alive(g)]
        for child in _deployment_processes(home):
            with contextlib.suppress(psutil.Error):
                alive.append(f"pid {child.pid} {' '.join(child.cmdline())[:120]}")
        return alive

    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10)):
        for pgid in groups:
            signal_group(pgid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is None:  # reap our own child so it does not stay a zombie
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.5)
            if not left():
                return []
            time.sleep(0.5)
    return left()


@contextlib.contextmanager
def local_airflow(conf: Path, root: Path) -> Iterator[LocalAirflow]:
    """``lakescore airflow`` on ``conf`` with its home under ``root``: yields once every
    component is healthy and the admin has a token; stops every process it started."""
    home = (root / "home").resolve()
    log = root / "lakescore_airflow.log"
    port, worker_logs_port, trigger_logs_port, driver_port = free_ports(4)
    base_url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "lakescore"), "--conf", str(conf), "airflow"]
    # the warm driver it starts too, on a port no other local Airflow's driver holds
    command += ["--home", str(home), "--port", str(port), "--driver-port", str(driver_port)]
    env = {
        **os.environ,
        "LAKESCORE_CONF": str(conf),
        "AIRFLOW_HOME": str(home),
        # The log servers' fixed default ports (8793/8794) clash with any other local Airflow.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs_port),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:

        def up() -> bool:
            assert process.poll() is None, (
                f"lakescore airflow exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
            return healthy(base_url)

        wait_until(
            up, START_TIMEOUT_S, "Airflow to be healthy", details=lambda: log.read_text()[-4000:]
        )
        password = admin_password(home)
        assert password, f"no generated admin password in {home}"
        login = {"username": "admin", "password": password}
        token = post_json(f"{base_url}/auth/token", login)["access_token"]
        yield LocalAirflow(base_url, home, log, password, token)
    finally:
        survivors = _stop(process, home)
        assert not survivors, f"processes of the local Airflow left after teardown: {survivors}"


def wait_for_dag(airflow: LocalAirflow, dag_id: str, timeout_s: float = START_TIMEOUT_S) -> None:
    """Healthy is not parsed: wait until the DAG processor has stored ``dag_id``."""

    def parsed() -> bool:
        try:
            get_json(f"{airflow.base_url}/api/v2/dags/{dag_id}", airflow.token)
            return True
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc
            return False

    def import_errors() -> str:
        return str(get_json(f"{airflow.base_url}/api/v2/importErrors", airflow.token))

    wait_until(parsed, timeout_s, f"{dag_id} to be parsed", details=import_errors)
