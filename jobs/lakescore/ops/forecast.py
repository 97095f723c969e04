"""Batch-window forecast: how long will scoring a partition of N rows take, from history.

The history is the job's succeeded ``score`` runs in the lineage table (``input_rows`` ->
``duration_s``, newest :data:`HISTORY_RUNS` of them). The fit is ordinary least squares:

* ``duration = a + b * rows`` when the past partitions differ in size (at least 3 distinct row
  counts and a positive slope): fixed start-up cost plus a per-row cost;
* otherwise ``duration = b * rows`` through the origin (every past partition had about the
  same size, so a fixed cost cannot be told from a per-row one; scaling the whole duration
  with the rows errs on the safe side for an oversized partition).

The error band is the usual prediction interval (Student t, ``confidence`` two-sided). With
fewer than :data:`MIN_RUNS` runs there is no band: the forecast says so instead of inventing
one. Pure Python + numpy/scipy over delta-rs reads: no JVM, safe to call from an Airflow task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from lakescore.config import PlatformConfig, ScoringJob

if TYPE_CHECKING:
    from lakescore.lakehouse.lineage import AirflowIds

MIN_RUNS = 3
HISTORY_RUNS = 50


@dataclass(frozen=True)
class RunTimeModel:
    """A fitted ``duration_s ~ rows`` model of one job."""

    kind: str  # "linear" | "proportional" | "too_few_runs" | "no_history"
    runs: int
    intercept: float = 0.0
    slope: float = 0.0  # seconds per row
    residual_std: float | None = None
    dof: int = 0
    _x_mean: float = 0.0
    _sxx: float = 0.0  # linear: sum (x - mean)^2; proportional: sum x^2

    def predict(self, rows: int, confidence: float = 0.9) -> Forecast:
        if self.kind == "no_history":
            return Forecast(rows, None, None, None, self, confidence)
        seconds = self.intercept + self.slope * rows
        if self.kind == "too_few_runs" or self.residual_std is None:
            return Forecast(rows, seconds, None, None, self, confidence)
        from scipy.stats import t

        if self.kind == "linear":
            spread = 1.0 + 1.0 / self.runs + (rows - self._x_mean) ** 2 / self._sxx
        else:
            spread = 1.0 + rows**2 / self._sxx
        half = (
            float(t.ppf(0.5 + confidence / 2.0, self.dof)) * self.residual_std * math.sqrt(spread)
        )
        return Forecast(rows, seconds, max(0.0, seconds - half), seconds + half, self, confidence)

    def describe(self) -> str:
        if self.kind == "no_history":
            return "no succeeded score runs in lineage yet"
        rate = f"{1.0 / self.slope:,.0f} rows/s" if self.slope > 0 else "n/a rows/s"
        base = f"{self.runs} past run{'s' if self.runs != 1 else ''}"
        if self.kind == "linear":
            return f"{base}, fit {self.intercept:.1f}s + rows / {rate}"
        if self.kind == "proportional":
            return f"{base}, fit rows / {rate} (past partitions were all about the same size)"
        return f"only {base}: at least {MIN_RUNS} needed for an error band; rows / {rate}"


@dataclass(frozen=True)
class Forecast:
    rows: int
    seconds: float | None
    low: float | None  # prediction interval, None without enough history
    high: float | None
    model: RunTimeModel
    confidence: float

    def describe(self) -> str:
        if self.seconds is None:
            return f"no forecast for {self.rows:,} rows: {self.model.describe()}"
        text = f"{self.rows:,} rows -> {_fmt_s(self.seconds)}"
        if self.low is not None and self.high is not None:
            text += f" ({self.confidence:.0%} band {_fmt_s(self.low)} .. {_fmt_s(self.high)})"
        return f"{text}; {self.model.describe()}"


@dataclass(frozen=True)
class WindowCheck:
    job: str
    forecast: Forecast
    window: timedelta | None
    ds: date | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exceeds(self) -> bool:
        """The point forecast is longer than the batch window."""
        return bool(
            self.window is not None
            and self.forecast.seconds is not None
            and self.forecast.seconds > self.window.total_seconds()
        )

    @property
    def at_risk(self) -> bool:
        """The upper end of the band is longer than the window (the point forecast is not)."""
        return bool(
            not self.exceeds
            and self.window is not None
            and self.forecast.high is not None
            and self.forecast.high > self.window.total_seconds()
        )

    def message(self) -> str:
        part = f", partition {self.ds}" if self.ds else ""
        if self.window is None:
            return f"job {self.job!r}{part}: {self.forecast.describe()} (no batch window set)"
        if self.forecast.seconds is None:
            return (
                f"job {self.job!r}{part}: {self.forecast.describe()} (batch window "
                f"{_fmt_s(self.window.total_seconds())} not checked)"
            )
        verdict = (
            "EXCEEDS the batch window"
            if self.exceeds
            else "may exceed the batch window"
            if self.at_risk
            else "fits the batch window"
        )
        return (
            f"job {self.job!r}{part}: forecast {verdict} of {_fmt_s(self.window.total_seconds())}: "
            f"{self.forecast.describe()}"
        )

    def to_dict(self) -> dict[str, Any]:
        f = self.forecast
        return {
            "job": self.job,
            "ds": self.ds.isoformat() if self.ds else None,
            "rows": f.rows,
            "forecast_s": f.seconds,
            "low_s": f.low,
            "high_s": f.high,
            "confidence": f.confidence,
            "window_s": self.window.total_seconds() if self.window else None,
            "exceeds": self.exceeds,
            "at_risk": self.at_risk,
            "fit": f.model.kind,
            "runs": f.model.runs,
            "intercept_s": f.model.intercept,
            "seconds_per_row": f.model.slope,
            "message": self.message(),
        }


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.2f}h"


def run_history(
    platform: PlatformConfig, job: str, limit: int = HISTORY_RUNS
) -> list[tuple[int, float]]:
    """``(input_rows, duration_s)`` of the job's newest succeeded score runs (lineage)."""
    from lakescore.lakehouse.lineage import find_lineage

    rows = find_lineage(platform.lineage_table, job=job, action="score", status="succeeded")
    points = [
        (int(r["input_rows"]), float(r["duration_s"]))
        for r in rows
        if r.get("input_rows") and r.get("duration_s") is not None
    ]
    return points[-limit:]


def fit(points: list[tuple[int, float]]) -> RunTimeModel:
    """Least-squares run-time model over ``(rows, seconds)`` points (see the module doc)."""
    n = len(points)
    if n == 0:
        return RunTimeModel(kind="no_history", runs=0)
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    sum_x2 = sum(x * x for x in xs)
    if sum_x2 == 0:
        return RunTimeModel(kind="no_history", runs=0)
    if len(set(xs)) >= MIN_RUNS:
        x_mean, y_mean = sum(xs) / n, sum(ys) / n
        sxx = sum((x - x_mean) ** 2 for x in xs)
        slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
        if slope > 0:
            intercept = y_mean - slope * x_mean
            ssr = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
            dof = n - 2
            return RunTimeModel(
                kind="linear",
                runs=n,
                intercept=intercept,
                slope=slope,
                residual_std=math.sqrt(ssr / dof),
                dof=dof,
                _x_mean=x_mean,
                _sxx=sxx,
            )
    slope = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum_x2
    if n < MIN_RUNS:
        return RunTimeModel(kind="too_few_runs", runs=n, slope=slope)
    ssr = sum((y - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    dof = n - 1
    return RunTimeModel(
        kind="proportional",
        runs=n,
        slope=slope,
        residual_std=math.sqrt(ssr / dof),
        dof=dof,
        _sxx=sum_x2,
    )


def check_window(
    job: ScoringJob,
    platform: PlatformConfig,
    rows: int,
    *,
    ds: date | None = None,
    confidence: float = 0.9,
) -> WindowCheck:
    """Forecast a run over ``rows`` rows from the job's history and compare with its window."""
    model = fit(run_history(platform, job.name))
    return WindowCheck(
        job=job.name, forecast=model.predict(rows, confidence), window=job.schedule.window, ds=ds
    )


def record_window_warning(
    platform: PlatformConfig,
    check: WindowCheck,
    *,
    run_id: str | None = None,
    airflow: AirflowIds | None = None,
) -> None:
    """Append a ``window_check`` lineage row (status ``warned``) for a forecast over the window,
    so the warning is queryable and shows in the report next to the run it preceded."""
    import uuid

    from lakescore.lakehouse.lineage import AirflowIds, LineageRecord, append_lineage, utcnow

    airflow = airflow or AirflowIds.from_env()
    now = utcnow()
    append_lineage(
        platform.lineage_table,
        [
            LineageRecord(
                attempt_id=uuid.uuid4().hex,
                run_id=run_id or f"{check.job}-window-{uuid.uuid4().hex[:8]}",
                action="window_check",
                job=check.job,
                ds=check.ds,
                status="warned",
                started_at=now,
                finished_at=now,
                airflow=airflow,
                input_rows=check.forecast.rows,
                error=check.message()[:4000],
                details={"forecast": check.to_dict()},
            )
        ],
    )
