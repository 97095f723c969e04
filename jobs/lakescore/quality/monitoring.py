"""Score drift: the distribution of a partition's scores, and its population stability index
(PSI) against the previous published partition and the model's training baseline.

The histogram is computed by Spark as observed metrics of the scoring pass's staging write (no
pass of its own; :func:`score_distribution` is the same aggregation over any DataFrame), PSI
in plain Python. Results go to the metrics table (:func:`lakescore.lakehouse.layout.metrics_schema`).

PSI = sum_i (a_i - e_i) * ln(a_i / e_i) over bin proportions (empty bins count as 1e-4).
Common reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from lakescore.lakehouse import layout

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql import Column, DataFrame

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
EPSILON = 1e-4


def bin_edges(low: float, high: float, bins: int) -> list[float]:
    step = (high - low) / bins
    return [low + i * step for i in range(bins)] + [high]


def psi(actual: list[int], expected: list[int]) -> float | None:
    """Population stability index of two histograms over the same bins (None if either is
    empty)."""
    if len(actual) != len(expected):
        raise ValueError("histograms have different bins")
    total_a, total_e = sum(actual), sum(expected)
    if total_a == 0 or total_e == 0:
        return None
    value = 0.0
    for a, e in zip(actual, expected, strict=True):
        pa_, pe = max(a / total_a, EPSILON), max(e / total_e, EPSILON)
        value += (pa_ - pe) * math.log(pa_ / pe)
    return value


def rebin(edges_from: list[float], counts: list[int], edges_to: list[float]) -> list[int]:
    """Move a (finer) histogram onto other bins: each source bin goes where its centre falls."""
    out = [0] * (len(edges_to) - 1)
    for i, count in enumerate(counts):
        centre = (edges_from[i] + edges_from[i + 1]) / 2
        for j in range(len(out)):
            last = j == len(out) - 1
            if edges_to[j] <= centre < edges_to[j + 1] or (last and centre == edges_to[-1]):
                out[j] += count
                break
    return out


@dataclass
class ScoreDistribution:
    rows: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float]
    bin_edges: list[float]
    bin_counts: list[int]
    # A multiclass model's drift is over its label shares: the bins are its classes (edges
    # 0..k count them), named here; None for a histogram of scores.
    bin_labels: list[str] | None = None


def label_expressions(classes: list[str]) -> list[Column]:
    """Rows per predicted class (``dist_l<i>``), for a multiclass model's label shares."""
    from pyspark.sql import functions as F

    label = F.col(layout.LABEL)
    return [
        F.sum((label == F.lit(c)).cast("long")).alias(f"dist_l{i}") for i, c in enumerate(classes)
    ]


def distribution_expressions(
    low: float, high: float, bins: int, *, quantiles: bool = True
) -> list[Column]:
    """Aggregates of ``score`` behind :class:`ScoreDistribution`: count, mean, std, min, max,
    quantiles and a fixed-bin histogram. Usable in ``agg`` or as observed metrics; without
    ``quantiles`` (``percentile_approx`` costs more per row than all the rest together) the
    caller supplies ``dist_q`` itself."""
    from pyspark.sql import functions as F

    score = F.col(layout.SCORE)
    width = (high - low) / bins
    # bucket index 0..bins-1 (the top edge belongs to the last bin); values outside the
    # range count in the edge bins
    bucket = F.greatest(
        F.least(F.floor((score - F.lit(low)) / F.lit(width)).cast("int"), F.lit(bins - 1)),
        F.lit(0),
    )
    return [
        F.count(score).alias("dist_rows"),
        F.avg(score).alias("dist_mean"),
        F.stddev_pop(score).alias("dist_std"),
        F.min(score).alias("dist_min"),
        F.max(score).alias("dist_max"),
        *(
            [F.percentile_approx(score, list(QUANTILES), 10_000).alias("dist_q")]
            if quantiles
            else []
        ),
        *[F.sum((bucket == i).cast("long")).alias(f"dist_b{i}") for i in range(bins)],
    ]


def distribution_from_metrics(
    metrics: Mapping[str, Any],
    low: float,
    high: float,
    bins: int,
    classes: list[str] | None = None,
) -> ScoreDistribution:
    """The distribution from the values of :func:`distribution_expressions` (and, with
    ``classes``, of :func:`label_expressions`: then the bins are the label shares)."""
    quantiles = {str(q): float(v) for q, v in zip(QUANTILES, metrics["dist_q"] or [], strict=False)}
    if classes:
        return ScoreDistribution(
            rows=int(metrics["dist_rows"] or 0),
            mean=metrics["dist_mean"],
            std=metrics["dist_std"],
            min=metrics["dist_min"],
            max=metrics["dist_max"],
            quantiles=quantiles,
            bin_edges=[float(i) for i in range(len(classes) + 1)],
            bin_counts=[int(metrics.get(f"dist_l{i}") or 0) for i in range(len(classes))],
            bin_labels=list(classes),
        )
    return ScoreDistribution(
        rows=int(metrics["dist_rows"] or 0),
        mean=metrics["dist_mean"],
        std=metrics["dist_std"],
        min=metrics["dist_min"],
        max=metrics["dist_max"],
        quantiles=quantiles,
        bin_edges=bin_edges(low, high, bins),
        bin_counts=[int(metrics[f"dist_b{i}"] or 0) for i in range(bins)],
    )


def score_distribution(scores: DataFrame, low: float, high: float, bins: int) -> ScoreDistribution:
    """Count, mean, std, min, max, quantiles and a fixed-bin histogram of ``score``."""
    row = scores.agg(*distribution_expressions(low, high, bins)).first()
    assert row is not None
    return distribution_from_metrics(row.asDict(), low, high, bins)


@dataclass
class DriftReport:
    distribution: ScoreDistribution
    previous_ds: date | None = None
    psi_previous: float | None = None
    baseline_bin_counts: list[int] | None = None
    psi_baseline: float | None = None
    status: str = "ok"
    messages: list[str] = field(default_factory=list)

    def worst_psi(self) -> float:
        return max(
            (p for p in (self.psi_previous, self.psi_baseline) if p is not None), default=0.0
        )


def assess_drift(
    distribution: ScoreDistribution,
    *,
    previous: tuple[date, list[float], list[int]] | None,
    baseline: dict[str, Any] | None,
    psi_warn: float,
    psi_fail: float | None,
) -> DriftReport:
    """PSI against the previous partition and the baseline, and the status thresholds give."""
    report = DriftReport(distribution)
    if previous is not None:
        prev_ds, prev_edges, prev_counts = previous
        if len(prev_edges) == len(distribution.bin_edges) and all(
            math.isclose(a, b) for a, b in zip(prev_edges, distribution.bin_edges, strict=True)
        ):
            report.previous_ds = prev_ds
            report.psi_previous = psi(distribution.bin_counts, prev_counts)
    # A training baseline is a histogram of scores: it says nothing about label shares.
    if (
        baseline
        and baseline.get("bin_edges")
        and baseline.get("bin_counts")
        and distribution.bin_labels is None
    ):
        report.baseline_bin_counts = rebin(
            baseline["bin_edges"], baseline["bin_counts"], distribution.bin_edges
        )
        report.psi_baseline = psi(distribution.bin_counts, report.baseline_bin_counts)
    for label, value in (
        ("previous partition", report.psi_previous),
        ("training baseline", report.psi_baseline),
    ):
        if value is None:
            continue
        if psi_fail is not None and value > psi_fail:
            report.status = "fail"
            report.messages.append(f"score PSI vs {label} {value:.3f} > fail threshold {psi_fail}")
        elif value > psi_warn:
            report.status = "warn" if report.status == "ok" else report.status
            report.messages.append(f"score PSI vs {label} {value:.3f} > warn threshold {psi_warn}")
    return report


def metrics_row(
    report: DriftReport,
    *,
    run_id: str,
    job: str,
    ds: date,
    model_name: str,
    model_version: int,
    computed_at: datetime,
    published: bool,
    role: str = "champion",
) -> dict[str, Any]:
    d = report.distribution
    return {
        "run_id": run_id,
        "job": job,
        "ds": ds,
        "role": role,
        "model_name": model_name,
        "model_version": model_version,
        "computed_at": computed_at,
        "published": published,
        "drift_status": report.status,
        "rows": d.rows,
        "mean": d.mean,
        "std": d.std,
        "min": d.min,
        "max": d.max,
        "quantiles": list(d.quantiles.items()),
        "bin_edges": d.bin_edges,
        "bin_counts": d.bin_counts,
        "bin_labels": d.bin_labels,
        "previous_ds": report.previous_ds,
        "psi_previous": report.psi_previous,
        "baseline_bin_counts": report.baseline_bin_counts,
        "psi_baseline": report.psi_baseline,
    }


def append_metrics(uri: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from lakescore.storage import delta_options

    table = pa.Table.from_pylist(rows, schema=layout.metrics_schema())
    write_deltalake(
        uri, table, mode="append", schema_mode="merge", storage_options=delta_options(uri)
    )


def previous_published(
    uri: str, job: str, ds: date, labels: list[str] | None = None
) -> tuple[date, list[float], list[int]] | None:
    """The latest published champion histogram of ``job`` for a partition before ``ds``: of
    scores, or with ``labels`` of those label shares (a histogram of the other kind, or of
    other classes, is not comparable)."""
    from lakescore.lakehouse import tables

    has_labels = tables.table_exists(uri) and "bin_labels" in tables.table_columns(uri)
    rows = tables.select_rows(
        uri,
        sort_by="computed_at",
        columns=["ds", "bin_edges", "bin_counts", *(["bin_labels"] if has_labels else [])],
        job=job,
        role="champion",
        published=True,
    )
    rows = [r for r in rows if r["ds"] < ds and _labels_of(r) == (list(labels) if labels else None)]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["ds"], r["computed_at"]))
    return best["ds"], best["bin_edges"], best["bin_counts"]


def _labels_of(row: dict[str, Any]) -> list[str] | None:
    value = row.get("bin_labels")
    return list(value) if value else None


def load_baseline(run_id: str | None, artifact: str) -> dict[str, Any] | None:
    """The training baseline stored with the model version's run (None if absent)."""
    if not run_id:
        return None
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact)
    except Exception:
        return None
    with open(path) as handle:
        return json.load(handle)
