"""What a run cost: executor-seconds priced by the platform's cost model.

``cost = executor_seconds / 3600 * executor_core_hour * (1 - spot_discount)``; one
executor-second is one core busy for one second (Spark's ``executorRunTime`` summed over the
run's tasks), so idle driver time is not counted. ``cost_per_1k`` divides by the rows the run
published. Both land in the run's lineage row and in the job report.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakescore.config import CostSpec


@dataclass(frozen=True)
class RunCost:
    cost: float
    cost_per_1k: float | None  # None when the run published no rows


def run_cost(
    executor_seconds: float | None, rows: int | None, spec: CostSpec | None
) -> RunCost | None:
    """The run's cost under ``spec``; None without a cost model or without executor-seconds."""
    if spec is None or executor_seconds is None:
        return None
    cost = executor_seconds / 3600.0 * spec.executor_core_hour * (1.0 - spec.spot_discount)
    per_1k = cost / rows * 1000.0 if rows else None
    return RunCost(cost=cost, cost_per_1k=per_1k)
