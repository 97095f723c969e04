"""A real Spark standalone cluster on loopback, from the pyspark installation: one master and
N workers started with ``$SPARK_HOME/bin/spark-class`` (SPARK_HOME = the pyspark package),
each in its own process group so that a worker can be killed together with its executors,
and everything can be stopped for sure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, stop_groups, wait_until

START_TIMEOUT_S = 180.0


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    webui_port: int
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the JVM leads its own group

    def pids(self) -> list[int]:
        """Every process of the group (the daemon JVM, its executors, their Python workers)."""
        out = subprocess.run(["ps", "-e", "-o", "pid=,pgid="], capture_output=True, text=True)
        return [
            int(pid)
            for pid, pgid in (line.split() for line in out.stdout.splitlines())
            if int(pgid) == self.pgid
        ]


@dataclass
class StandaloneCluster:
    """``start()`` a master and ``workers`` workers (1 core, ``worker_memory`` each)."""

    root: Path
    workers: int = 2
    worker_memory: str = "1g"
    master_port: int = 0
    master_webui_port: int = 0
    master: Daemon | None = None
    worker_daemons: list[Daemon | None] = field(default_factory=list)
    retired: list[Daemon] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_HOSTNAME="localhost",
            SPARK_DAEMON_MEMORY="256m",
            SPARK_LOG_DIR=str(self.root / "logs"),
            PYSPARK_PYTHON=sys.executable,
            # The master forgets a worker 15 s after its last heartbeat (default 60 s); a
            # killed worker is noticed at once anyway (its connection closes).
            SPARK_MASTER_OPTS="-Dspark.worker.timeout=15",
            # SIGPWR to a worker decommissions it (and its executors) gracefully.
            SPARK_WORKER_OPTS="-Dspark.decommission.enabled=true",
        )
        return env

    def _spawn(self, name: str, args: list[str], webui_port: int) -> Daemon:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.root,
                start_new_session=True,
            )
        return Daemon(name, process, webui_port, log)

    def start(self) -> StandaloneCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.master_port, self.master_webui_port = free_port(), free_port()
        self.master = self._spawn(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host", "127.0.0.1",
                "--port", str(self.master_port),
                "--webui-port", str(self.master_webui_port),
            ],
            self.master_webui_port,
        )  # fmt: skip
        self.worker_daemons = [self._start_worker(i) for i in range(self.workers)]
        self.wait_alive(self.workers)
        return self

    def _start_worker(self, index: int) -> Daemon:
        webui = free_port()
        work_dir = self.root / f"worker-{index}-{time.monotonic_ns()}"
        work_dir.mkdir(parents=True)
        return self._spawn(
            f"worker-{index}",
            [
                "org.apache.spark.deploy.worker.Worker",
                "--host", "127.0.0.1",
                "--port", str(free_port()),
                "--webui-port", str(webui),
                "--cores", "1",
                "--memory", self.worker_memory,
                "--work-dir", str(work_dir),
                self.url,
            ],
            webui,
        )  # fmt: skip

    def state(self) -> dict[str, Any]:
        """The master web UI's JSON (workers, their states, running applications)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.master_webui_port}/json/", timeout=5
        ) as response:
            return json.loads(response.read())

    def alive_workers(self) -> int:
        try:
            return sum(1 for w in self.state()["workers"] if w["state"] == "ALIVE")
        except OSError:
            return 0

    def wait_alive(self, count: int, timeout: float = START_TIMEOUT_S) -> None:
        def ready() -> bool:
            for daemon in [self.master, *self.worker_daemons]:
                if daemon is not None and daemon.process.poll() is not None:
                    raise RuntimeError(
                        f"spark {daemon.name} exited ({daemon.process.returncode}): "
                        + daemon.log.read_text()[-2000:]
                    )
            return self.alive_workers() == count

        wait_until(
            ready, timeout, f"{count} ALIVE workers", step=0.25, details=lambda: str(self.state())
        )

    def worker(self, index: int) -> Daemon:
        daemon = self.worker_daemons[index]
        assert daemon is not None, f"worker {index} is stopped"
        return daemon

    def kill_worker(self, index: int) -> list[int]:
        """kill -9 the worker JVM and every executor (and Python worker) it started."""
        daemon = self.worker(index)
        pids = daemon.pids()
        os.killpg(daemon.pgid, signal.SIGKILL)
        self.retired.append(daemon)
        self.worker_daemons[index] = None
        return pids

    def decommission_worker(self, index: int) -> None:
        """SIGPWR: the worker decommissions itself and its executors (a preemption notice)."""
        os.kill(self.worker(index).process.pid, signal.SIGPWR)

    def restore_workers(self) -> None:
        """Bring the cluster back to ``workers`` ALIVE workers (after kills/decommissions)."""
        for index, daemon in enumerate(self.worker_daemons):
            state = self._worker_state(daemon)
            if daemon is None or state != "ALIVE":
                if daemon is not None:
                    stop_groups([daemon.process])
                    self.retired.append(daemon)
                self.worker_daemons[index] = self._start_worker(index)
        self.wait_alive(self.workers)

    def _worker_state(self, daemon: Daemon | None) -> str | None:
        if daemon is None or daemon.process.poll() is not None:
            return None
        for w in self.state()["workers"]:
            if w.get("webuiaddress", "").endswith(f":{daemon.webui_port}"):
                return w["state"]
        return None

    def stop(self) -> list[str]:
        """Stop every daemon (the workers together, then the master); returns the names of
        those whose process group survived."""
        survivors = []
        workers = [d for d in [*self.worker_daemons, *self.retired] if d is not None]
        for daemons in (workers, [self.master] if self.master else []):
            left = stop_groups([d.process for d in daemons])
            survivors += [d.name for d in daemons if d.pgid in left]
            for daemon in daemons:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.process.wait(timeout=10)
        return survivors
