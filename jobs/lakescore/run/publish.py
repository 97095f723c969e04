"""Stages ``publish`` and ``shadow``: the audited scores become one Delta version.

The champion's scores replace partition ds of the prediction table in one atomic commit
(delta-rs commit of the files written in place, or :func:`lakescore.lakehouse.tables.replace_partition`
of the staged rows); quarantined rows replace the day's partition of the rejects table; the
challengers' scores go to the shadow table afterwards, where a failure is recorded and never
undoes or blocks the champion's publish.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lakescore.lakehouse import layout, tables
from lakescore.lakehouse.lineage import utcnow
from lakescore.ml import shadow as shadow_scoring
from lakescore.quality.monitoring import append_metrics, metrics_row
from lakescore.run.audit import AuditedOutput, metrics_identity
from lakescore.run.check import CheckedPartition
from lakescore.run.context import RunContext
from lakescore.run.resolve import RunModels
from lakescore.run.score import ScoredOutput
from lakescore.run.validate import ValidatedInput

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakescore.config import ScoringJob


def publish_stage(
    ctx: RunContext,
    spark: SparkSession,
    partition: CheckedPartition,
    models: RunModels,
    validated: ValidatedInput,
    scored: ScoredOutput,
    audited: AuditedOutput,
    drift: Any,
    key_fields: list[Any],
) -> int:
    """Publish the champion's partition; return the prediction table's new version."""
    job, record, day = ctx.job, ctx.record, ctx.day
    keys, part_col = job.features.entity_keys, job.features.partition_column
    rows = audited.audit.rows
    with ctx.stages("publish", job.output.table):
        commit = tables.CommitInfo(
            run_id=ctx.run_id,
            job=job.name,
            ds=day,
            model_name=models.model.name,
            model_version=models.model.version,
            input_table=job.features.table,
            input_version=partition.version,
            rows=rows,
        )
        ensure_prediction_table(spark, job, key_fields, models.model.task)
        if scored.in_table:
            version = tables.commit_partition_files(
                job.output.table,
                part_col,
                day,
                scored.written_to,
                commit,
                ctx.txn_version,
                expected_rows=rows,
            )
        else:
            assert audited.staged is not None
            version = tables.replace_partition(
                audited.staged.select(
                    *layout.prediction_columns(keys, part_col, models.model.task)
                ),
                job.output.table,
                part_col,
                day,
                commit,
                ctx.txn_version,
            )
        record.output_version = version
        record.output_rows = rows
        ctx.progress.stage("publish", f"{job.output.table} version {version}")
        append_metrics(
            ctx.platform.metrics_table,
            [metrics_row(drift, **metrics_identity(ctx, models), published=True)],
        )
        if validated.rejects is not None:
            _publish_rejects(ctx, spark, validated.rejects)
    return version


def _publish_rejects(ctx: RunContext, spark: SparkSession, rejects: DataFrame) -> None:
    """Replace partition ``day`` of the job's rejects table with this run's rejected rows."""
    from pyspark.sql import functions as F

    job, record = ctx.job, ctx.record
    uri = ctx.platform.rejects_table(job.name)
    rows = rejects.withColumn(layout.RUN_ID, F.lit(ctx.run_id)).withColumn(
        "rejected_at", F.current_timestamp()
    )
    if not tables.table_exists(uri):
        tables.ensure_table(
            spark,
            uri,
            rows.schema,
            job.features.partition_column,
            f"lakescore rejects of job {job.name}",
        )
    tables.replace_partition(
        rows,
        uri,
        job.features.partition_column,
        ctx.day,
        tables.CommitInfo(
            run_id=ctx.run_id,
            job=job.name,
            ds=ctx.day,
            model_name=record.model_name or "",
            model_version=record.model_version or 0,
            input_table=job.features.table,
            input_version=record.input_version or 0,
            rows=record.rejected_rows or 0,
        ),
        ctx.txn_version,
    )


def ensure_prediction_table(
    spark: SparkSession, job: ScoringJob, key_fields: list[Any], task: str = "binary"
) -> None:
    """Create the job's prediction table on its first publish, its task recorded as the table
    property ``lakescore.task`` (a concurrent first publish of another day may win the race:
    then publish into the winner's table)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    if tables.table_exists(job.output.table):
        return
    schema = layout.prediction_schema(key_fields, job.features.partition_column, task)
    try:
        tables.ensure_table(
            spark,
            job.output.table,
            from_arrow_schema(schema),
            job.features.partition_column,
            f"lakescore predictions of job {job.name} ({job.model.name})",
            {layout.TASK_PROPERTY: task},
        )
    except Exception:
        # Two first runs (different days) raced to create the table: the loser fails, on its
        # commit of version 0 or on the winner's log folder whose first commit is not written
        # yet. The winner's table has the same layout: wait for its commit, publish into it.
        deadline = time.monotonic() + TABLE_CREATION_WAIT_S
        while not tables.table_exists(job.output.table):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


TABLE_CREATION_WAIT_S = 60.0


def publish_shadow_stage(
    ctx: RunContext,
    spark: SparkSession,
    partition: CheckedPartition,
    models: RunModels,
    scored: ScoredOutput,
    audited: AuditedOutput,
    key_fields: list[Any],
) -> None:
    """Shadow table publish + challenger metrics, after the champion's publish. Any failure
    is recorded (lineage details, metrics) and never fails the run."""
    job, challengers = ctx.job, models.challengers
    with ctx.stages("shadow", job.shadow_table):
        version, error = _commit_shadow(ctx, spark, partition, models, scored, audited, key_fields)
        ctx.record.details["shadow"] = {
            "table": job.shadow_table,
            "version": version,
            "error": error,
            "challengers": [c.summary() for c in challengers],
        }
        try:
            rows = shadow_scoring.metrics_rows(
                challengers,
                run_id=ctx.run_id,
                job=job,
                ds=ctx.day,
                champion=models.model,
                computed_at=utcnow(),
                published=version is not None,
            )
            if rows:
                append_metrics(ctx.platform.metrics_table, rows)
        except Exception as exc:
            ctx.record.details["shadow"]["metrics_error"] = f"{type(exc).__name__}: {exc}"
        failed = [c.reference for c in challengers if c.status == "failed"]
        ctx.progress.stage(
            "shadow",
            f"{job.shadow_table} version {version}"
            + (f"; failed challengers: {', '.join(failed)}" if failed else ""),
        )


def _commit_shadow(
    ctx: RunContext,
    spark: SparkSession,
    partition: CheckedPartition,
    models: RunModels,
    scored: ScoredOutput,
    audited: AuditedOutput,
    key_fields: list[Any],
) -> tuple[int | None, str | None]:
    """(shadow table version, error): the challengers' scores as one commit of the partition."""
    job, challengers = ctx.job, models.challengers
    try:
        if scored.task_files is not None:
            files = {
                c.index: scored.task_files.files[i + 1]
                for i, c in enumerate(models.active_challengers)
            }
            return shadow_scoring.commit_shadow_files(
                challengers,
                files,
                job=job,
                ds=ctx.day,
                run_id=ctx.run_id,
                txn_version=ctx.txn_version,
                input_version=partition.version,
            ), None
        if audited.staged is not None:  # else no challenger was active: the table stays
            return shadow_scoring.publish_shadow(
                spark,
                audited.staged,
                challengers,
                job=job,
                ds=ctx.day,
                run_id=ctx.run_id,
                txn_version=ctx.txn_version,
                input_version=partition.version,
                key_fields=key_fields,
            ), None
        return None, None
    except Exception as exc:
        error = f"shadow publish failed: {type(exc).__name__}: {str(exc)[:500]}"
        for c in challengers:
            if c.active:
                c.fail(error)
        return None, error
