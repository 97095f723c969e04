"""What happened to the executors during a run, from Spark's own status store (no listener).

On preemptible executors the lineage row says how many executors the application lost
(killed, preempted or decommissioned) and why, next to ``failed_tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class ExecutorLosses:
    count: int
    reasons: dict[str, str] = field(default_factory=dict)  # executor id -> remove reason


def executor_losses(spark: SparkSession) -> ExecutorLosses | None:
    """Executors of this application that were removed (not the driver). None if the status
    store cannot be read (never fails a run).

    lakescore's profiles do not use dynamic allocation, so a removed executor is a lost one:
    killed, its worker gone, or decommissioned (a preemption notice).
    """
    try:
        jsc = spark.sparkContext._jsc.sc()  # type: ignore[attr-defined]
        summaries = jsc.statusStore().executorList(False)
        scheduler = jsc.taskScheduler()
        reasons: dict[str, str] = {}
        for i in range(summaries.size()):
            summary: Any = summaries.apply(i)
            executor_id = str(summary.id())
            if executor_id == "driver":
                continue
            if summary.isActive():
                # A decommissioned executor drains (finishes its tasks, migrates its blocks)
                # before it leaves: it is lost to the run already.
                if scheduler.getExecutorDecommissionState(executor_id).isDefined():
                    reasons[executor_id] = "decommissioning (draining)"
                continue
            reason = summary.removeReason()
            reasons[executor_id] = str(reason.get()) if reason.isDefined() else ""
        return ExecutorLosses(len(reasons), reasons)
    except Exception:  # a status-store change must never fail a run
        return None
