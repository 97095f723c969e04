"""Stages ``audit`` and ``drift``: the written scores are checked before anyone sees them.

Audit: rows out equal rows in, keys present and distinct, every score finite and inside the
job's bounds; bad feature values found by the scoring pass are refused here with the column
named. Drift: PSI of the score histogram against the previous published partition and the
model's training baseline; above ``psi_fail`` nothing is published. Challengers are compared
with the champion here too (an error there fails the challengers, never the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakescore.errors import DriftFailure
from lakescore.lakehouse.lineage import utcnow
from lakescore.ml import shadow as shadow_scoring
from lakescore.ml.scoring import (
    audit_from_metrics,
    bad_value_counts,
    require_clean_audit,
    written_stats,
)
from lakescore.quality import guards
from lakescore.quality.monitoring import (
    ScoreDistribution,
    append_metrics,
    distribution_from_metrics,
    metrics_row,
)
from lakescore.run.context import RunContext
from lakescore.run.resolve import RunModels
from lakescore.run.score import ScoredOutput
from lakescore.run.validate import ValidatedInput
from lakescore.storage import spark_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class AuditedOutput:
    """The audit's verdict on the written scores, and the scores as a Spark DataFrame when
    the publish (staging path) or the challengers' comparison reads them back."""

    audit: Any  # lakescore.ml.scoring.Audit
    observed: dict[str, Any]
    staged: DataFrame | None


def audit_stage(
    ctx: RunContext,
    spark: SparkSession,
    models: RunModels,
    validated: ValidatedInput,
    scored: ScoredOutput,
) -> AuditedOutput:
    job, record = ctx.job, ctx.record
    keys = job.features.entity_keys
    with ctx.stages("audit"):
        written_to = scored.written_to
        # The staging path reads its files back (challengers, publish rewrite); the commit
        # path needs no Spark DataFrame of them.
        staged = spark.read.parquet(spark_path(written_to)) if not scored.in_table else None
        expected = (
            validated.expected_rows
            if validated.expected_rows is not None
            else validated.source.df().count()
        )
        record.input_rows = record.input_rows if record.input_rows is not None else expected
        # Distinct keys and score quantiles: one more read, of the score column and (unless
        # the writing tasks saw every key in increasing order) the key columns.
        task_files = scored.task_files
        proven = task_files.summaries[0].proven_distinct_keys() if task_files else None
        written = written_stats(
            written_to,
            keys,
            lambda: staged or spark.read.parquet(spark_path(written_to)),
            distinct_keys=proven,
        )
        observed = {**scored.observed, "dist_q": written.quantiles}
        audit = audit_from_metrics(
            observed, expected_rows=expected, distinct_keys=written.distinct_keys
        )
        record.details["audit"] = {
            "rows": audit.rows,
            "score_min": audit.score_min,
            "score_max": audit.score_max,
            "score_mean": audit.score_mean,
            "distinct_keys": "key order" if proven is not None else "counted",
        }
        guards.refuse_bad_input(
            audit,
            # failure path only: counted by the writing tasks, or read from the staged flags
            # (the files of the Spark commit path do not keep them: score again)
            lambda: (
                dict(task_files.summaries[0].bad_values)
                if task_files is not None
                else bad_value_counts(staged if staged is not None else scored.scored)
            ),
            keys=keys,
            features=models.features,
            # Validation (policy fail/quarantine) already refused null and duplicate keys.
            check_keys=not job.validation.enabled or job.validation.policy == "warn",
            job=job.name,
            ds=ctx.ds,
            table=job.features.table,
        )
        require_clean_audit(audit, job=job.name, ds=ctx.ds)
        ctx.progress.stage(
            "audit", f"passed: {audit.rows} rows, mean score {audit.score_mean or 0:.4f}"
        )
    return AuditedOutput(audit, observed, staged)


def metrics_identity(ctx: RunContext, models: RunModels) -> dict[str, Any]:
    """The columns that name this run's row in the metrics table."""
    return {
        "run_id": ctx.run_id,
        "job": ctx.job.name,
        "ds": ctx.day,
        "model_name": models.model.name,
        "model_version": models.model.version,
        "computed_at": utcnow(),
    }


def drift_stage(
    ctx: RunContext, models: RunModels, scored: ScoredOutput, audited: AuditedOutput
) -> Any:
    """Assess drift, fail above ``psi_fail`` (recording an unpublished metrics row) and
    compare the challengers; returns the drift assessment."""
    job, record = ctx.job, ctx.record
    with ctx.stages("drift"):
        drift = _assess_drift(
            distribution_from_metrics(
                audited.observed,
                *(models.histogram or job.audit.bounds(models.model.task)),
                job.monitoring.bins,
                models.classes,
            ),
            ctx,
            models,
        )
        record.drift_status = drift.status
        record.psi_previous = drift.psi_previous
        record.psi_baseline = drift.psi_baseline
        if drift.status == "fail":
            append_metrics(
                ctx.platform.metrics_table,
                [metrics_row(drift, **metrics_identity(ctx, models), published=False)],
            )
            raise DriftFailure(
                "score drift above the fail threshold, nothing published: "
                + "; ".join(drift.messages),
                job=job.name,
                ds=ctx.ds,
            )
        if models.challengers:
            comparisons = (
                None
                if scored.task_files is None
                else {
                    c.index: scored.task_files.comparisons[i + 1]
                    for i, c in enumerate(models.active_challengers)
                }
            )
            _compare_challengers(ctx, audited.staged, comparisons, models, drift)
        ctx.progress.stage(
            "drift",
            f"{drift.status}: PSI vs previous {fmt(drift.psi_previous)}, "
            f"vs baseline {fmt(drift.psi_baseline)}"
            + (f" ({'; '.join(drift.messages)})" if drift.messages else ""),
        )
    return drift


def _assess_drift(distribution: ScoreDistribution, ctx: RunContext, models: RunModels) -> Any:
    from lakescore.ml.models import BASELINE_ARTIFACT
    from lakescore.quality.monitoring import assess_drift, load_baseline, previous_published

    model, job = models.model, ctx.job
    artifact = model.tags.get("lakescore.baseline", BASELINE_ARTIFACT)
    return assess_drift(
        distribution,
        previous=previous_published(
            ctx.platform.metrics_table, job.name, ctx.day, models.classes or None
        ),
        baseline=load_baseline(model.run_id, artifact),
        psi_warn=job.monitoring.psi_warn,
        psi_fail=job.monitoring.psi_fail,
    )


def _compare_challengers(
    ctx: RunContext,
    staged: DataFrame | None,
    comparisons: dict[int, Any] | None,
    models: RunModels,
    drift: Any,
) -> None:
    """Challenger vs champion statistics, from the scoring tasks' ``comparisons`` (by
    challenger index) or one aggregation over the staged scores; an error here fails the
    challengers, not the run."""
    job, challengers = ctx.job, models.challengers
    try:
        if comparisons is not None:
            shadow_scoring.compare_summaries(challengers, comparisons)
        elif staged is not None:  # else no challenger was active: nothing to compare
            shadow_scoring.compare(
                staged,
                challengers,
                score_min=job.audit.bounds(models.model.task)[0],
                score_max=job.audit.bounds(models.model.task)[1],
                bins=job.monitoring.bins,
                threshold=job.shadow.decision_threshold,
            )
    except Exception as exc:
        for c in challengers:
            if c.active:
                c.fail(f"comparison failed: {type(exc).__name__}: {exc}")
    for c in challengers:
        if c.comparison is not None:
            comp = c.comparison
            ctx.progress.stage(
                "compare",
                f"{c.reference}: corr {fmt(comp.correlation)}, mean diff "
                f"{fmt(comp.mean_difference)}, PSI vs champion {fmt(comp.psi_champion)}, "
                f"flips {fmt(comp.flip_share)} ({c.status})",
            )


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
