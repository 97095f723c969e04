"""Range runs: many partitions of one job in one Spark application.

``lakescore score --job J --from D1 --to D2`` scores every day of the range in order, each
still its own write-audit-publish with its own Delta commit and lineage row, but the fixed
costs of a run (JVM start, Python workers, imports, the model's download and load, Great
Expectations' import) are paid once for the range instead of once per partition. The model
version is pinned once, at the start, so an alias moved mid-range cannot mix versions.

A partition that fails (bad input, a failed audit) fails alone: it is recorded in lineage
like any failed run and the range goes on; the caller gets every partition's outcome. A rerun
of a range replaces each partition (every publish is a ``replaceWhere``-style overwrite of its
day), so it never duplicates rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.errors import LakescoreError, as_lakescore_error
from lakescore.lakehouse import tables
from lakescore.lakehouse.lineage import AirflowIds
from lakescore.run.context import RunResult
from lakescore.run.pipeline import score_partition
from lakescore.run.progress import ProgressReporter

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MAX_RANGE_DAYS = 3660


def range_days(start: str | date, end: str | date, *, job: ScoringJob) -> list[date]:
    """Every day from ``start`` to ``end``, both included; a reversed or too long range is
    bad input naming the job."""
    first = tables.parse_partition_date(
        start, job=job.name, max_future_days=job.schedule.max_future_days
    )
    last = tables.parse_partition_date(
        end, job=job.name, max_future_days=job.schedule.max_future_days
    )
    from lakescore.errors import BadInputError

    if last < first:
        raise BadInputError(f"--to {last} is before --from {first}", job=job.name)
    days = (last - first).days + 1
    if days > MAX_RANGE_DAYS:
        raise BadInputError(
            f"a range of {days} days is longer than {MAX_RANGE_DAYS}; split it", job=job.name
        )
    return [first + timedelta(days=i) for i in range(days)]


def chunk_days(days: list[date], size: int) -> list[list[date]]:
    """``days`` in consecutive chunks of at most ``size`` days (the backfill DAG's tasks)."""
    if size < 1:
        raise ValueError(f"chunk_days must be at least 1, not {size}")
    return [days[i : i + size] for i in range(0, len(days), size)]


@dataclass
class PartitionOutcome:
    """What happened to one partition of a range."""

    ds: date
    status: str  # succeeded | validated | failed
    seconds: float
    result: RunResult | None = None
    error: LakescoreError | None = None

    @property
    def rows(self) -> int:
        return self.result.rows if self.result else 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ds": self.ds.isoformat(),
            "status": self.status,
            "seconds": round(self.seconds, 3),
        }
        if self.result is not None:
            out.update(self.result.to_dict())
        if self.error is not None:
            out["error"] = str(self.error)
            out["exit_code"] = self.error.exit_code
        return out


@dataclass
class RangeProgress:
    """Partitions done / total, rows/s and an ETA, after each partition of a range."""

    done: int
    total: int
    failed: int
    rows: int
    elapsed_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.done:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)

    def line(self) -> str:
        eta = "n/a" if self.eta_s is None else f"{self.eta_s:,.0f}s"
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.done}/{self.total} partitions{failed}, {self.rows:,} rows, "
            f"{self.rows_per_s:,.0f} rows/s, ETA {eta}"
        )


def score_range(
    job: ScoringJob,
    days: list[date],
    *,
    platform: PlatformConfig,
    spark: SparkSession | None = None,
    model_version: int | None = None,
    airflow: AirflowIds | None = None,
    progress: ProgressReporter | None = None,
    on_partition: Callable[[PartitionOutcome, RangeProgress], None] | None = None,
    validate_only: bool = False,
    shadow: bool = True,
) -> list[PartitionOutcome]:
    """Score (or only validate) each of ``days`` in one Spark session; see the module
    docstring. ``on_partition`` is called after each partition with its outcome and the
    range's progress. Raises only for problems of the whole range (the model does not
    resolve, Spark does not start); a partition's own failure is in its outcome."""
    from lakescore.ml.models import resolve_model_version
    from lakescore.spark import get_spark_session

    pinned = resolve_model_version(platform, job.model, model_version, job=job.name)
    if spark is None:
        spark = get_spark_session(platform, job.spark_profile, app_name=f"lakescore-{job.name}")
    outcomes: list[PartitionOutcome] = []
    started = time.perf_counter()
    for index, day in enumerate(days):
        t0 = time.perf_counter()
        details = {
            "range": {
                "from": days[0].isoformat(),
                "to": days[-1].isoformat(),
                "index": index + 1,
                "of": len(days),
            }
        }
        try:
            result = score_partition(
                job,
                day,
                platform=platform,
                spark=spark,
                model_version=pinned.version,
                airflow=airflow,
                progress=progress,
                validate_only=validate_only,
                lineage_details=details,
                shadow=shadow,
            )
            outcome = PartitionOutcome(day, result.status, time.perf_counter() - t0, result)
        except Exception as exc:  # recorded in lineage by score_partition; the range goes on
            error = as_lakescore_error(exc, job=job.name, ds=day.isoformat())
            outcome = PartitionOutcome(day, "failed", time.perf_counter() - t0, error=error)
        outcomes.append(outcome)
        if on_partition is not None:
            on_partition(outcome, _progress(outcomes, len(days), time.perf_counter() - started))
    return outcomes


def _progress(outcomes: list[PartitionOutcome], total: int, elapsed: float) -> RangeProgress:
    return RangeProgress(
        done=len(outcomes),
        total=total,
        failed=sum(o.status == "failed" for o in outcomes),
        rows=sum(o.rows for o in outcomes),
        elapsed_s=elapsed,
    )


def range_exit_code(outcomes: list[PartitionOutcome]) -> int:
    """0 when every partition succeeded; else 1 if any failure could pass on retry, 2 when
    every failure was bad input."""
    codes = {o.error.exit_code for o in outcomes if o.error is not None}
    if not codes:
        return 0
    return 2 if codes == {2} else 1
