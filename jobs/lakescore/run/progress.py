"""How a run tells the outside where it is: named stages (timed) and Spark task counts.

The CLI draws a progress bar from these calls, the Airflow operator logs lines; every stage
line passes through :func:`lakescore.redaction.redact` first, so no credential reaches a log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from lakescore.redaction import redact

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class ProgressReporter:
    """Receives stage changes and task progress. The CLI draws a bar; Airflow logs lines."""

    def stage(self, name: str, detail: str = "") -> None:  # pragma: no cover - interface
        pass

    def tasks(self, done: int, total: int) -> None:  # pragma: no cover - interface
        pass


class RedactingProgress(ProgressReporter):
    """Every stage line goes through :func:`lakescore.redaction.redact` (no credentials)."""

    def __init__(self, inner: ProgressReporter) -> None:
        self.inner = inner

    def stage(self, name: str, detail: str = "") -> None:
        self.inner.stage(name, redact(detail))

    def tasks(self, done: int, total: int) -> None:
        self.inner.tasks(done, total)


class LogProgress(ProgressReporter):
    """One log line per stage and per change of the completed-task count."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._last = -1

    def stage(self, name: str, detail: str = "") -> None:
        self.log(f"[{name}] {detail}".rstrip())

    def tasks(self, done: int, total: int) -> None:
        if done != self._last and total:
            self._last = done
            self.log(f"[score] tasks {done}/{total}")


class StageTimer:
    """Times named stages into ``seconds`` and tells the progress reporter.

    ``on_stage`` (if set) is called with each stage's name as it starts: the run's attempt
    marker records the last stage reached, for a driver that dies mid-run.
    """

    def __init__(self, progress: ProgressReporter) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self.on_stage: Callable[[str], None] | None = None

    @contextmanager
    def __call__(self, name: str, detail: str = "") -> Iterator[None]:
        self.progress.stage(name, detail)
        if self.on_stage:
            self.on_stage(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@contextmanager
def watch_tasks(spark: SparkSession, group: str, progress: ProgressReporter) -> Iterator[None]:
    """Poll Spark's status tracker while a job of ``group`` runs and report task counts."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            done = total = 0
            for job_id in tracker.getJobIdsForGroup(group):
                job_info = tracker.getJobInfo(job_id)
                for stage_id in job_info.stageIds if job_info else []:
                    stage = tracker.getStageInfo(stage_id)
                    if stage:
                        done += stage.numCompletedTasks
                        total += stage.numTasks
            progress.tasks(done, total)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
