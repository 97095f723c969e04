"""Callbacks: failures of Airflow-side tasks and missed deadlines land in the lineage table.

The scoring job records its own attempts (success or failure). These callbacks cover what
happens before it starts: a partition that never arrived, a model alias that does not
resolve, a malformed ``ds``, and a run that is not published by its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date
from typing import Any

log = logging.getLogger("lakescore.alerts")


def _record(
    *,
    job: str,
    ds: date | None,
    status: str,
    action: str,
    error_class: str,
    error: str,
    airflow: dict[str, Any],
    conf_dir: str | None = None,
) -> None:
    from lakescore.orchestration import (
        AirflowIds,
        LineageRecord,
        append_lineage,
        load_platform,
        utcnow,
    )

    platform = load_platform(conf_dir)
    now = utcnow()
    record = LineageRecord(
        attempt_id=uuid.uuid4().hex,
        run_id=f"{job}-{ds or 'unknown'}-{airflow.get('run_id') or now.isoformat()}",
        action=action,
        job=job,
        ds=ds,
        status=status,
        started_at=now,
        finished_at=now,
        error_class=error_class,
        error=error[:4000],
        airflow=AirflowIds(**airflow),
    )
    append_lineage(platform.lineage_table, [record])


def _partition_of(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def record_task_failure(context: Any, *, job_name: str, conf_dir: str | None = None) -> None:
    """``on_failure_callback`` of the tasks that run before Spark: one failed lineage row.

    Bound per DAG with ``functools.partial(record_task_failure, job_name=...)``.
    """
    ti = context["ti"]
    dag_run = context["dag_run"]
    params = context.get("params") or {}
    ds = _partition_of(ti.xcom_pull(task_ids="resolve_partition")) or _partition_of(
        params.get("ds")
    )
    exc = context.get("exception")
    try:
        _record(
            job=job_name,
            ds=ds,
            status="failed",
            action="score",
            error_class=type(exc).__name__ if exc else "TaskFailed",
            error=f"task {ti.task_id} failed: "
            + (str(exc) if exc else "marked failed by Airflow (see the task's log)"),
            airflow={
                "dag_id": dag_run.dag_id,
                "run_id": dag_run.run_id,
                "task_id": ti.task_id,
                "try_number": ti.try_number,
            },
            conf_dir=conf_dir,
        )
    except Exception:  # a callback must never hide the task's own failure
        log.exception("could not record the failure of %s in lineage", ti.task_id)


async def deadline_missed(
    job: str, deadline: str, conf_dir: str | None = None, context: dict[str, Any] | None = None
) -> str:
    """Deadline alert (runs in the triggerer): the run's partition was not published in time."""
    dag_run = (context or {}).get("dag_run") or {}
    conf = dag_run.get("conf") or {}
    ds = _partition_of(conf.get("ds")) or _partition_of(dag_run.get("logical_date"))
    message = (
        f"lakescore DEADLINE MISSED: job {job!r}, partition {ds or '?'}: not published within "
        f"{deadline} of the run being queued (dag run {dag_run.get('dag_run_id')}, state "
        f"{dag_run.get('state')})"
    )
    log.error(message)
    await asyncio.to_thread(
        _record,
        job=job,
        ds=ds,
        status="deadline_missed",
        action="alert",
        error_class="DeadlineMissed",
        error=message,
        airflow={"dag_id": dag_run.get("dag_id"), "run_id": dag_run.get("dag_run_id")},
        conf_dir=conf_dir,
    )
    return message
