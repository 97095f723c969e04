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
        store = spark.sparkContext._jsc.sc().statusStore()  # type: ignore[attr-defined]
        summaries = store.executorList(False)
        reasons: dict[str, str] = {}
        for i in range(summaries.size()):
            summary: Any = summaries.apply(i)
            if summary.id() == "driver" or summary.isActive():
                continue
            reason = summary.removeReason()
            reasons[str(summary.id())] = str(reason.get()) if reason.isDefined() else ""
        return ExecutorLosses(len(reasons), reasons)
    except Exception:  # a status-store change must never fail a run
        return None
