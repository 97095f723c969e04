"""Stage ``lineage``, and what feeds it from Spark: the attempt's lineage row is finished and
appended (success or failure), abandoned attempts of earlier drivers are recorded, and the
run's executor-seconds, failed tasks and lost executors are read from Spark's status store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.lakehouse.lineage import LineageRecord, append_lineage, utcnow
from lakescore.ops.cost import run_cost
from lakescore.ops.executors import executor_losses
from lakescore.ops.recovery import recover_abandoned
from lakescore.run.progress import ProgressReporter, StageTimer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def finish_record(record: LineageRecord, stages: StageTimer, platform: PlatformConfig) -> None:
    """Close the attempt's lineage row (durations, rates, cost) and append it."""
    record.finished_at = utcnow()
    record.duration_s = (record.finished_at - record.started_at).total_seconds()
    record.stage_seconds = dict(stages.seconds)
    if record.output_rows and record.duration_s:
        record.rows_per_s = record.output_rows / record.duration_s
    if priced := run_cost(record.executor_seconds, record.output_rows, platform.cost):
        record.cost, record.cost_per_1k = priced.cost, priced.cost_per_1k
    stages.progress.stage(
        "lineage", f"{record.status} attempt recorded in {platform.lineage_table}"
    )
    append_lineage(platform.lineage_table, [record])


def recover_abandoned_attempts(
    platform: PlatformConfig, job: ScoringJob, progress: ProgressReporter
) -> None:
    """Record attempts whose driver died (their marker is left) and remove their files."""
    try:
        found = recover_abandoned(platform, job).abandoned
    except Exception as exc:  # cleanup of an earlier attempt must not stop this one
        progress.stage("recover", f"WARNING: could not check for abandoned attempts: {exc}")
        return
    for item in found:
        progress.stage(
            "recover",
            f"recorded abandoned attempt {item['run_id']} (died in {item['last_stage']}) "
            "and removed its staged files",
        )


def record_executor_losses(spark: SparkSession, record: LineageRecord) -> None:
    losses = executor_losses(spark)
    if losses is not None:
        record.lost_executors = losses.count
        if losses.reasons:
            record.details["lost_executors"] = losses.reasons


def task_metrics(spark: SparkSession, group: str) -> tuple[float | None, int | None]:
    """Executor-seconds and failed tasks of the run's Spark jobs, from Spark's status store."""
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    try:
        store = sc._jsc.sc().statusStore()  # type: ignore[attr-defined]
        run_ms = 0
        failed = 0
        for job_id in tracker.getJobIdsForGroup(group):
            job_info = tracker.getJobInfo(job_id)
            for stage_id in job_info.stageIds if job_info else []:
                attempts = store.stageData(
                    stage_id,
                    False,
                    getattr(store, "stageData$default$3")(),
                    False,
                    getattr(store, "stageData$default$5")(),
                )
                for i in range(attempts.size()):
                    data = attempts.apply(i)
                    run_ms += data.executorRunTime()
                    failed += data.numFailedTasks()
        return run_ms / 1000.0, failed
    except Exception:
        return None, None
