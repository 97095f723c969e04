"""Process helpers for whatever starts real local services (the local Airflow deployment, the
benchmarks, the tests' PostgreSQL, Spark standalone cluster and scoring drivers): free
loopback ports, waiting on a condition, and stopping whole process groups (every service is
started with ``start_new_session=True``, so its pid is its process group id) for sure."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free now (all held open while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def free_port() -> int:
    """A loopback port that is free now (and, with nothing listening, refuses connections)."""
    return free_ports(1)[0]


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    step: float = 0.5,
    details: Callable[[], str] | None = None,
) -> Any:
    """Call ``check`` every ``step`` seconds until it returns something truthy (returned);
    TimeoutError naming ``what`` (plus ``details()``, e.g. a log tail) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"not within {timeout}s: {what}" + (f"\n{details()}" if details else "")
            )
        time.sleep(step)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; an empty (gone) group is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def live_groups() -> set[int]:
    """The process groups that hold at least one running process. Zombies do not count: in a
    container whose PID 1 does not reap, an orphaned zombie would keep its group 'alive'."""
    groups = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            groups.add(int(fields[2]))
    return groups


def group_alive(pgid: int) -> bool:
    """Is any process of group ``pgid`` still running (zombies do not count)?"""
    return pgid in live_groups()


def stop_groups(
    processes: Iterable[subprocess.Popen[Any]],
    *,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL),
    timeout: float = 20.0,
) -> list[int]:
    """Send each of ``signals`` in turn to the process group of every process (each leads
    its own group), waiting up to ``timeout`` seconds after each for the groups to empty;
    reaps the leaders. Returns the groups that are still alive after the last signal."""
    processes = list(processes)

    def alive() -> list[int]:
        for process in processes:
            process.poll()  # reap our child, or it stays in its group as a zombie
        live = live_groups()
        return [p.pid for p in processes if p.pid in live]

    left = [process.pid for process in processes]
    for sig in signals:
        for pgid in left:  # at once: callers time this kill
            signal_group(pgid, sig)
        deadline = time.monotonic() + timeout
        while (left := alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not left:
            return []
    return left


def kill_group(process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGKILL ``process`` and everything in its group at once, and wait until they are gone."""
    stop_groups([process], signals=(signal.SIGKILL,), timeout=timeout)
    process.wait(timeout=timeout)
