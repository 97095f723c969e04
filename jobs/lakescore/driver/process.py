"""Start and stop a warm driver as a child process: what ``lakescore airflow`` (``make
airflow``), benchmarks and tests use.

Example::

    driver = start_driver(conf_dir, port=8790, log_file=Path("var/driver.log"))
    try:
        ...  # Airflow tasks reach it at driver.url (LAKESCORE_DRIVER_URL)
    finally:
        driver.stop()

The same process by hand: ``lakescore --conf conf driver --port 8790``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lakescore.driver.client import DriverClient, DriverUnavailable


@dataclass
class DriverProcess:
    """A running ``lakescore driver`` (leader of its own process group)."""

    process: subprocess.Popen[bytes]
    url: str
    log_file: Path | None = None
    token: str | None = None

    def client(self) -> DriverClient:
        return DriverClient(self.url, token=self.token)

    def healthy(self) -> bool:
        try:
            self.client().health()
        except DriverUnavailable:
            return False
        return True

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until ``/health`` answers; RuntimeError (with the log's tail) when the process
        exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with code {self.process.returncode}"
                    if self.process.returncode is not None
                    else f"not healthy after {timeout:.0f}s"
                )
                raise RuntimeError(f"lakescore driver {state}{self._log_tail()}")
            time.sleep(0.5)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (the driver stops taking runs, stops Spark), SIGKILL after ``timeout``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        return self.process.poll()

    def _log_tail(self) -> str:
        if self.log_file is None or not self.log_file.is_file():
            return ""
        lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        return f"; last lines of {self.log_file}:\n" + "\n".join(lines)


def start_driver(
    conf_dir: str | Path | None = None,
    *,
    profile: str | None = None,
    host: str | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_file: Path | None = None,
    wait: bool = True,
    timeout: float = 180.0,
) -> DriverProcess:
    """Start ``lakescore driver`` in its own process group (output to ``log_file``, else
    inherited) and, with ``wait``, return once it answers ``/health``."""
    from lakescore.config import DRIVER_TOKEN_ENV, load_platform

    environ = dict(os.environ if env is None else env)
    platform = load_platform(conf_dir)
    host, port = host or platform.driver.host, port or platform.driver.port
    command = [sys.executable, "-m", "lakescore.cli", "--conf", platform.conf_dir, "driver"]
    command += ["--host", host, "--port", str(port)]
    if profile:
        command += ["--profile", profile]
    out: IO[bytes] | int | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        out = log_file.open("ab")
    try:
        process = subprocess.Popen(
            command,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out is not None and not isinstance(out, int):
            out.close()  # the child holds its own descriptor
    driver = DriverProcess(
        process,
        f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}",
        log_file,
        environ.get(DRIVER_TOKEN_ENV) or None,
    )
    if wait:
        try:
            driver.wait_ready(timeout)
        except BaseException:
            driver.stop(timeout=10)
            raise
    return driver
