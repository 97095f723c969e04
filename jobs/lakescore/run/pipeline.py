"""One scoring run of job J for partition ds, as named stages in order.

check -> resolve_model -> load_model -> spark_start -> validate -> score -> audit -> drift
-> publish -> shadow -> lineage. Each stage is a function of its own module in this package,
taking and returning typed values; :func:`run_stages` calls them top to bottom and
:func:`score_partition` wraps that in the attempt's bookkeeping (identity, attempt marker,
lineage row on success and on failure, clean-up of files nobody will commit).
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.errors import LakescoreError, as_lakescore_error
from lakescore.lakehouse import tables
from lakescore.lakehouse.lineage import AirflowIds, LineageRecord, utcnow
from lakescore.ml import shadow as shadow_scoring
from lakescore.ml.scoring import ModelSlot, ValueCheck
from lakescore.ops.recovery import AttemptMarker, fault_point
from lakescore.quality import guards
from lakescore.quality.validation import import_great_expectations
from lakescore.run import audit as audit_
from lakescore.run import publish as publish_
from lakescore.run.check import check_partition, fails_when_empty, refuse_empty_partition
from lakescore.run.context import RunContext, RunRequest, RunResult, new_run_id
from lakescore.run.progress import ProgressReporter, RedactingProgress, StageTimer
from lakescore.run.record import (
    finish_record,
    record_executor_losses,
    recover_abandoned_attempts,
)
from lakescore.run.resolve import RunModels, load_models, resolve_models
from lakescore.run.score import ScoringPlan, score_stage
from lakescore.run.score_path import choose_reader, choose_score_path
from lakescore.run.session import BackgroundSession, ShippedModel, attach_session
from lakescore.run.validate import validate_partition_stage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def score_partition(
    job: ScoringJob,
    ds: str | date,
    *,
    platform: PlatformConfig,
    spark: SparkSession | None = None,
    model_version: int | None = None,
    run_id: str | None = None,
    txn_version: int | None = None,
    airflow: AirflowIds | None = None,
    progress: ProgressReporter | None = None,
    input_version: int | None = None,
    validate_only: bool = False,
    validated: bool = False,
    action: str | None = None,
    reason: str | None = None,
    lineage_details: dict[str, Any] | None = None,
    shadow: bool = True,
) -> RunResult:
    """Score partition ``ds`` of ``job`` and publish it (write-audit-publish).

    ``model_version`` pins a version (wins over the job's alias). ``run_id``/``txn_version``
    let a retried attempt of the same run reuse its identity so a publish that already landed
    is not repeated. ``input_version`` pins the feature table's snapshot. Airflow splits a run
    in two Spark applications: ``validate_only`` stops after validation (lineage action
    ``validate``); the scoring task then passes ``validated`` (and the same ``input_version``)
    so Great Expectations does not run twice. ``action``/``reason``/``lineage_details`` mark
    the lineage row of a re-score that is not a plain run (``rollback``). ``shadow=False``
    leaves the job's challengers out of this run (the shadow table is not touched).

    Any failure leaves the prediction table exactly as it was, and every attempt (success or
    failure) leaves one lineage row. Raises :class:`BadInputError` or
    :class:`ScoringFailure`.
    """
    ctx = _new_context(
        job,
        ds,
        platform,
        RunRequest(model_version, input_version, validate_only, validated, shadow),
        run_id=run_id,
        txn_version=txn_version,
        airflow=airflow,
        progress=progress,
        action=action,
        reason=reason,
        lineage_details=lineage_details,
    )
    record = ctx.record
    # A driver killed earlier left a marker and maybe staged files: record it, clean it up.
    recover_abandoned_attempts(platform, job, ctx.progress)
    marker = AttemptMarker(ctx.staging_dir, record)
    ctx.stages.on_stage = marker.write
    try:
        # Probe the staging folder first: a file in the way, a read-only or full disk fails
        # here with the path named (the marker and Spark's write would fail less clearly).
        guards.prepare_staging(ctx.staging_dir, job=job.name)
        marker.write()
        result = run_stages(ctx, spark)
    except Exception as exc:
        _record_failure(ctx, marker, exc)
    finally:
        shutil.rmtree(ctx.staging_dir, ignore_errors=True)
    record.status = "succeeded"
    finish_record(record, ctx.stages, platform)
    marker.remove()
    result.stage_seconds = dict(ctx.stages.seconds)
    result.seconds = record.duration_s or result.seconds
    return result


def _new_context(
    job: ScoringJob,
    ds: str | date,
    platform: PlatformConfig,
    request: RunRequest,
    *,
    run_id: str | None,
    txn_version: int | None,
    airflow: AirflowIds | None,
    progress: ProgressReporter | None,
    action: str | None,
    reason: str | None,
    lineage_details: dict[str, Any] | None,
) -> RunContext:
    """The attempt's identity and its lineage row, status ``running``."""
    progress = RedactingProgress(progress or ProgressReporter())
    started = utcnow()
    day = tables.parse_partition_date(
        ds, job=job.name, max_future_days=job.schedule.max_future_days
    )
    run_id = run_id or new_run_id(job.name, day, started)
    record = LineageRecord(
        attempt_id=uuid.uuid4().hex,
        run_id=run_id,
        action=action or ("validate" if request.validate_only else "score"),
        job=job.name,
        ds=day,
        status="running",
        started_at=started,
        finished_at=started,
        airflow=airflow or AirflowIds.from_env(),
        input_table=job.features.table,
        output_table=job.output.table,
        reason=reason,
        details=dict(lineage_details or {}),
    )
    return RunContext(
        job=job,
        day=day,
        platform=platform,
        request=request,
        run_id=run_id,
        txn_version=txn_version or int(started.timestamp() * 1000),
        record=record,
        staging_dir=Path(platform.staging_root) / job.name / day.isoformat() / run_id,
        stages=StageTimer(progress),
    )


def run_stages(ctx: RunContext, spark: SparkSession | None = None) -> RunResult:
    """The stages of one run, in order; ``spark`` is the caller's session (else one starts
    in the background once the partition checks pass, overlapping the models' load)."""
    partition = check_partition(ctx)
    empty_fails = fails_when_empty(ctx, partition)
    starting = (
        BackgroundSession(ctx.platform, ctx.job) if spark is None and not empty_fails else None
    )
    try:
        models = resolve_models(ctx, partition)
        refuse_empty_partition(ctx, partition)
        load_models(ctx, models)
        if starting is not None and ctx.job.validation.enabled and not ctx.request.validated:
            # Seconds of Python the main thread would otherwise spend after the JVM is up.
            with ctx.stages("validate", "importing Great Expectations while Spark starts"):
                import_great_expectations()
    except BaseException:
        if starting is not None:
            starting.settle()  # Spark's start-up output comes before the error, not after it
        raise
    spark, shipped = attach_session(ctx, starting, spark, models)

    if ctx.request.validate_only:
        validated = validate_partition_stage(ctx, spark, partition, models)
        validated.source.release()
        return RunResult.of(
            ctx,
            status="validated",
            rows=partition.info.rows or 0,
            input_version=partition.version,
            version=None,
        )

    guards.prepare_staging(ctx.staging_dir, job=ctx.job.name)
    slots = _model_slots(models, shipped)
    # The reader is chosen before validation: it decides whether validation caches the rows.
    reader = choose_reader(ctx, spark, partition, models, slots)
    validated = validate_partition_stage(ctx, spark, partition, models, cache=reader.path.cache)
    schema = tables.table_schema(ctx.job.features.table, partition.version)
    key_fields = [schema.field(k) for k in ctx.job.features.entity_keys]
    if models.active_challengers:  # in their task's layout before any path writes into it
        shadow_scoring.ensure_shadow_table(spark, ctx.job, key_fields, models.model.task)
    chosen = choose_score_path(ctx, spark, reader, models, key_fields)
    plan = ScoringPlan(
        slots=slots,
        # Infinite (and, unless allowed, NaN) feature values are found by the scoring pass
        # and refused after it, with null and duplicate keys, by the audit.
        check=ValueCheck(tuple(models.features), allow_nan=ctx.job.features.allow_nan),
        key_fields=key_fields,
        scored_at=utcnow(),
        chosen=chosen,
    )
    scored = score_stage(ctx, spark, models, validated, plan)
    fault_point("after_staging")

    audited = audit_.audit_stage(ctx, spark, models, validated, scored)
    drift = audit_.drift_stage(ctx, models, scored, audited)
    record_executor_losses(spark, ctx.record)
    fault_point("before_publish")

    version = publish_.publish_stage(
        ctx, spark, partition, models, validated, scored, audited, drift, key_fields
    )
    if models.challengers:
        publish_.publish_shadow_stage(ctx, spark, partition, models, scored, audited, key_fields)
    fault_point("after_publish")
    validated.source.release()
    return RunResult.of(
        ctx,
        status="succeeded",
        rows=audited.audit.rows,
        input_version=partition.version,
        version=version,
    )


def _model_slots(models: RunModels, shipped: ShippedModel) -> list[ModelSlot]:
    """The champion's slot, then the challengers'."""
    assert models.model_dir is not None
    return [
        ModelSlot.of(
            models.model,
            str(models.model_dir),
            models.features,
            shipped_name=shipped.archive,
            estimator=shipped.estimator,
        ),
        *shadow_scoring.slots(models.challengers),
    ]


def _record_failure(ctx: RunContext, marker: AttemptMarker, exc: Exception) -> NoReturn:
    """Turn ``exc`` into the run's one error, remove files no commit will refer to, append
    the failed attempt's lineage row, and raise."""
    job, record, platform = ctx.job, ctx.record, ctx.platform
    explained = (
        None
        if isinstance(exc, LakescoreError)
        else guards.explain_failure(exc, staging_dir=ctx.staging_dir, table=job.features.table)
    )
    err = as_lakescore_error(explained or exc, job=job.name, ds=ctx.ds)
    for uri in (job.output.table, job.shadow_table):
        with contextlib.suppress(Exception):  # the run's own error is the one to report
            tables.remove_uncommitted_run_folder(
                uri, job.features.partition_column, ctx.day, ctx.run_id
            )
    record.status = "failed"
    record.error_class = type(err).__name__
    record.error = str(err)[:4000]
    try:
        finish_record(record, ctx.stages, platform)
    except Exception as lineage_exc:  # the run's own error stays the one raised
        if err.file != platform.lineage_table:
            first = str(lineage_exc).strip().splitlines()[0] if str(lineage_exc) else ""
            err.message += f" (this attempt could not be recorded in lineage: {first[:200]})"
            err.with_context()
    else:  # kept if lineage failed: the next run records the attempt as abandoned
        with contextlib.suppress(OSError):
            marker.remove()
    if err is exc:
        raise exc
    raise err from exc
