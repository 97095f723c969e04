"""What a job's report shows, as plain values: gathered from the lineage and metrics tables
(delta-rs, no JVM) by :func:`load_report_data`, then derived by pure functions of those rows.

Nothing here renders anything: :mod:`lakescore.reporting.charts` draws the values and
:mod:`lakescore.reporting.page` puts them into the page's templates. Each function takes the
rows as lakescore's own writers leave them in the tables (dicts, newest or oldest first as
stated), so tests can check them on real tables without reading HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from lakescore.lakehouse import tables

if TYPE_CHECKING:
    from lakescore.config import PlatformConfig

Row = dict[str, Any]


@dataclass
class ReportData:
    """The rows a job's report is made of, read once from the lineage and metrics tables."""

    runs: list[Row]  # attempts of the job, newest first, at most limit_runs
    total_runs: int  # attempts of the job in the lineage table
    all_runs: list[Row]  # every attempt of the job, oldest first
    metrics: list[Row]  # champion metrics rows of the job, oldest first
    lineage_version: int | None
    metrics_version: int | None
    comparisons: list[Row] = field(default_factory=list)  # challenger rows, oldest first

    def latest_published_metrics(self) -> Row | None:
        published = [m for m in self.metrics if m.get("published")]
        return published[-1] if published else None

    def metrics_for_run(self, run_id: str) -> Row | None:
        mine = [m for m in self.metrics if m.get("run_id") == run_id]
        return mine[-1] if mine else None


def load_report_data(
    platform: PlatformConfig, job_name: str, *, limit_runs: int = 30
) -> ReportData:
    """Lineage and metrics rows of ``job_name`` (delta-rs; empty lists if a table is missing)."""
    lineage_uri, metrics_uri = platform.lineage_table, platform.metrics_table
    runs = tables.select_rows(lineage_uri, sort_by="started_at", job=job_name)
    all_metrics = tables.select_rows(metrics_uri, sort_by="computed_at", job=job_name)
    metrics = [m for m in all_metrics if (m.get("role") or "champion") == "champion"]
    comparisons = [m for m in all_metrics if m.get("role") == "challenger"]
    return ReportData(
        runs=list(reversed(runs))[: max(limit_runs, 0)],
        total_runs=len(runs),
        all_runs=runs,
        metrics=metrics,
        lineage_version=tables.table_version(lineage_uri),
        metrics_version=tables.table_version(metrics_uri),
        comparisons=comparisons,
    )


def last_run_per_job(platform: PlatformConfig) -> dict[str, Row]:
    """The newest lineage row of every job (for the index of reports)."""
    last: dict[str, Row] = {}
    for run in tables.select_rows(platform.lineage_table, sort_by="started_at"):
        last[run.get("job")] = run
    return last


def published(run: Row) -> bool:
    """Did this attempt publish a table version?"""
    return run.get("status") == "succeeded" and run.get("output_version") is not None


def tone(status: str | None) -> str:
    """``ok``, ``bad``, ``warn`` or ``other``: how a status (run, validation) reads."""
    s = (status or "").lower()
    if s in ("succeeded", "success", "passed", "ok"):
        return "ok"
    if s in ("failed", "fail", "error", "deadline_missed"):
        return "bad"
    if s in ("warn", "warned", "quarantined", "running", "skipped"):
        return "warn"
    return "other"


# --------------------------------------------------------------------------- summary cards


@dataclass(frozen=True)
class JobSummary:
    """The cards at the top of the page."""

    last_run: Row | None
    latest_partition: Row | None  # the newest partition's latest publishing run
    attempts: int  # shown attempts (the success rate's denominator)
    succeeded: int
    priced_runs: int
    total_cost: float | None
    mean_cost_per_1k: float | None
    drift: Row | None  # the latest published metrics row
    worst_psi: float | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def job_summary(data: ReportData) -> JobSummary:
    """Last run, newest published partition, success rate and cost of the shown attempts, and
    the drift of the latest published scores."""
    runs = data.runs
    done = [r for r in data.all_runs if published(r) and r.get("ds")]
    latest = None
    if done:
        newest_ds = max(r["ds"] for r in done)
        latest = [r for r in done if r["ds"] == newest_ds][-1]
    priced = [r for r in runs if r.get("cost") is not None]
    per_1k = [r["cost_per_1k"] for r in priced if r.get("cost_per_1k") is not None]
    drift = data.latest_published_metrics()
    return JobSummary(
        last_run=runs[0] if runs else None,
        latest_partition=latest,
        attempts=len(runs),
        succeeded=sum(1 for r in runs if r.get("status") == "succeeded"),
        priced_runs=len(priced),
        total_cost=sum(r["cost"] for r in priced) if priced else None,
        mean_cost_per_1k=sum(per_1k) / len(per_1k) if per_1k else None,
        drift=drift,
        worst_psi=worst_psi(drift) if drift else None,
    )


def worst_psi(row: Row) -> float | None:
    """The larger of a row's two PSI values (vs previous partition, vs training baseline)."""
    values = [v for v in (row.get("psi_previous"), row.get("psi_baseline")) if v is not None]
    return max(values, default=None)


# --------------------------------------------------------------------------- charts' data


@dataclass(frozen=True)
class ScoreHistogram:
    """The latest published run's score histogram, as shares of its rows, and the model's
    training baseline re-binned to the same bins (``None`` when none was recorded). For a
    multiclass model the bins are its classes (``labels``, one per bin): the shares of rows
    per predicted class, with no baseline."""

    metrics: Row  # the metrics row it comes from
    edges: list[float]
    counts: list[int]
    baseline: list[float] | None  # shares
    labels: list[str] | None = None  # the class of each bin (multiclass), else None

    @property
    def rows(self) -> int:
        return sum(self.counts)

    @property
    def shares(self) -> list[float]:
        total = self.rows
        return [c / total for c in self.counts] if total else [0.0] * len(self.counts)


def score_histogram(data: ReportData) -> ScoreHistogram | None:
    """The histogram of the latest published run (``None`` before any publish). A row without
    a usable histogram gives empty ``counts``."""
    m = data.latest_published_metrics()
    if m is None:
        return None
    edges = [float(x) for x in (m.get("bin_edges") or [])]
    counts = [int(x or 0) for x in (m.get("bin_counts") or [])]
    if not counts or len(edges) != len(counts) + 1:
        return ScoreHistogram(m, [], [], None)
    labels = [str(x) for x in (m.get("bin_labels") or [])]
    if labels:
        if len(labels) != len(counts):
            return ScoreHistogram(m, [], [], None)
        return ScoreHistogram(m, edges, counts, None, labels)
    base = [int(x or 0) for x in (m.get("baseline_bin_counts") or [])]
    baseline = [b / sum(base) for b in base] if len(base) == len(counts) and sum(base) else None
    return ScoreHistogram(m, edges, counts, baseline)


@dataclass(frozen=True)
class PsiPoint:
    """A partition's drift: PSI against the previous partition and the training baseline."""

    ds: date
    psi_previous: float | None
    psi_baseline: float | None
    published: bool
    drift_status: str | None


def psi_points(metrics: list[Row], limit: int) -> list[PsiPoint]:
    """One point per partition (the newest ``limit`` days), oldest first, from the champion's
    metrics rows (oldest first): a later row of a day wins, but a published row wins over a
    refused one, so a refused rerun does not hide what the table holds."""
    by_ds: dict[date, Row] = {}
    for m in metrics:
        ds = m.get("ds")
        if ds is None:
            continue
        held = by_ds.get(ds)
        if held is None or m.get("published") or not held.get("published"):
            by_ds[ds] = m
    days = sorted(by_ds)[-max(limit, 1) :]
    return [
        PsiPoint(
            ds=d,
            psi_previous=by_ds[d].get("psi_previous"),
            psi_baseline=by_ds[d].get("psi_baseline"),
            published=bool(by_ds[d].get("published")),
            drift_status=by_ds[d].get("drift_status"),
        )
        for d in days
    ]


@dataclass(frozen=True)
class PartitionRows:
    """What a partition's scoring runs left: the rows its latest successful run published (and
    quarantined), or ``None`` with the status of its last attempt."""

    ds: date
    published_rows: int | None
    rejected_rows: int
    last_status: str | None


def rows_per_partition(all_runs: list[Row], limit: int) -> list[PartitionRows]:
    """The newest ``limit`` partitions of the score runs (lineage rows, oldest first)."""
    ok: dict[date, Row | None] = {}
    last: dict[date, Row] = {}
    for run in all_runs:
        ds = run.get("ds")
        if ds is None or (run.get("action") or "score") != "score":
            continue
        last[ds] = run
        ok.setdefault(ds, None)
        if published(run):
            ok[ds] = run
    days = sorted(last)[-max(limit, 1) :]
    return [
        PartitionRows(
            ds=d,
            published_rows=int(ok[d].get("output_rows") or 0) if ok[d] else None,
            rejected_rows=int(ok[d].get("rejected_rows") or 0) if ok[d] else 0,
            last_status=last[d].get("status"),
        )
        for d in days
    ]


@dataclass(frozen=True)
class ValidationOutcome:
    """A run's Great Expectations outcome (``status`` is ``not run`` without one)."""

    ds: date | None
    run_id: str | None
    status: str
    failed: int | None
    evaluated: int | None


def validation_outcomes(runs: list[Row]) -> list[ValidationOutcome]:
    """The shown runs' outcomes, oldest first (``runs`` newest first); empty when none of them
    recorded a validation."""
    if not any(r.get("validation_status") for r in runs):
        return []
    return [
        ValidationOutcome(
            ds=r.get("ds"),
            run_id=r.get("run_id"),
            status=r.get("validation_status") or "not run",
            failed=r.get("validation_failed"),
            evaluated=r.get("validation_evaluated"),
        )
        for r in reversed(runs)
    ]


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class RunLine:
    """One attempt in the runs table."""

    run: Row
    status: str
    action: str
    rows: int | None  # output rows, else input rows
    model: str  # "name vN @alias"
    drift_status: str | None
    worst_psi: float | None
    error_class: str

    @property
    def started_at(self) -> datetime | None:
        return self.run.get("started_at")


def run_lines(data: ReportData) -> list[RunLine]:
    """The shown attempts, newest first; a run whose lineage row has no drift takes it from its
    metrics row."""
    return [_run_line(run, data) for run in data.runs]


def _run_line(run: Row, data: ReportData) -> RunLine:
    rows = run.get("output_rows")
    if rows is None:
        rows = run.get("input_rows")
    model = ""
    if run.get("model_name"):
        model = f"{run['model_name']} v{run.get('model_version')}"
        if run.get("model_alias"):
            model += f" @{run['model_alias']}"
    drift_source: Row = run
    if run.get("drift_status") is None and run.get("run_id"):
        drift_source = data.metrics_for_run(run["run_id"]) or run
    return RunLine(
        run=run,
        status=run.get("status") or "unknown",
        action=run.get("action") or "score",
        rows=rows,
        model=model,
        drift_status=drift_source.get("drift_status"),
        worst_psi=worst_psi(drift_source),
        error_class=run.get("error_class") or ("error" if run.get("error") else ""),
    )


def latest_comparisons(data: ReportData, limit: int = 20) -> list[Row]:
    """Champion vs challenger rows (``role = challenger`` metrics), newest first."""
    return list(reversed(data.comparisons))[:limit]
