"""Stage ``validate``: Great Expectations on the feature partition, and the policy's verdict.

``fail`` stops the run on any failed expectation; ``quarantine`` sets rows that fail row-level
expectations aside (published to the job's rejects table with the scores); ``warn`` records and
scores anyway. An Airflow scoring task whose validate task already checked the same snapshot
takes that outcome from lineage instead of running the suite twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore.lakehouse import tables
from lakescore.run.check import CheckedPartition
from lakescore.run.context import RunContext
from lakescore.run.resolve import RunModels

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class PartitionSource:
    """The feature partition as a Spark DataFrame, built on first use: it costs a Delta
    snapshot load in the JVM (about a second on a fresh session) that the file reader does
    not need. Validation may replace it with its cached (or quarantine-filtered) rows."""

    def __init__(self, spark: SparkSession, ctx: RunContext, partition: CheckedPartition) -> None:
        self._spark, self._ctx, self._partition = spark, ctx, partition
        self._df: DataFrame | None = None
        self._persisted: list[DataFrame] = []

    @property
    def built(self) -> bool:
        return self._df is not None

    @property
    def held(self) -> bool:
        """The rows scored are persisted (:meth:`hold`)."""
        return self._df is not None and any(df is self._df for df in self._persisted)

    @property
    def size_bytes(self) -> int:
        return self._partition.info.size_bytes

    def df(self) -> DataFrame:
        if self._df is None:
            job = self._ctx.job
            self._df = tables.read_partition(
                self._spark,
                job.features.table,
                job.features.partition_column,
                self._ctx.day,
                self._partition.version,
            )
        return self._df

    def replace(self, df: DataFrame) -> None:
        """Score ``df`` instead (validation's cached rows, or those that passed quarantine)."""
        self._df = df

    def hold(self, df: DataFrame) -> DataFrame:
        """Persist ``df`` until :meth:`release`."""
        from pyspark import StorageLevel

        self._persisted.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return self._persisted[-1]

    def release(self) -> None:
        """Unpersist what validation cached."""
        for df in self._persisted:
            df.unpersist()
        self._persisted.clear()


@dataclass
class ValidatedInput:
    """What scoring reads: the partition's rows (all of them, or those that passed
    quarantine), the rejected rows, and how many rows the output must have (None: count)."""

    source: PartitionSource
    rejects: DataFrame | None
    expected_rows: int | None
    cached: bool  # the partition's rows are persisted in Spark (the scoring pass reads them)


def validate_partition_stage(
    ctx: RunContext,
    spark: SparkSession,
    partition: CheckedPartition,
    models: RunModels,
    *,
    cache: bool = False,
) -> ValidatedInput:
    """``cache``: persist the partition's rows while validating, because the scoring pass
    reads them again through Spark (:func:`lakescore.run.score_path.decide` says when)."""
    source = PartitionSource(spark, ctx, partition)
    if not ctx.job.validation.enabled:
        return ValidatedInput(source, None, partition.info.rows, cached=False)
    part_col = ctx.job.features.partition_column
    with ctx.stages("validate", f"Great Expectations on {part_col}={ctx.day}"):
        try:
            return _validate(ctx, spark, partition, models, source, cache)
        except BaseException:
            source.release()  # a failed partition leaves nothing cached in a warm session
            raise


def _validate(
    ctx: RunContext,
    spark: SparkSession,
    partition: CheckedPartition,
    models: RunModels,
    source: PartitionSource,
    cache: bool,
) -> ValidatedInput:
    """Great Expectations on the partition (persisted first when ``cache``).

    When an earlier ``validate`` attempt of this Airflow run checked the same snapshot, its
    outcome comes from lineage: no Great Expectations import, no suite, no Spark read."""
    from lakescore.quality.validation import validate_partition

    job, record, info = ctx.job, ctx.record, partition.info
    earlier = _earlier_validation(ctx, info.version) if ctx.request.validated else None
    tracker = spark.sparkContext.statusTracker()
    jobs_before = len(tracker.getJobIdsForGroup(ctx.run_id))
    rules: list[Any] | None = None
    if earlier is not None:
        outcome = earlier
        ctx.progress.stage(
            "validate", f"validated by {record.details['validated_by']}: {outcome.summary()}"
        )
    else:
        rows = source.df()
        if cache:
            rows = source.hold(rows)
            source.replace(rows)
        rules = _rules(ctx, partition, models)
        outcome = validate_partition(
            rows,
            rules,
            job=job.name,
            ds=ctx.ds,
            report_dir=Path(ctx.platform.reports_root) / job.name / ctx.ds / ctx.run_id,
            run_name=ctx.run_id,
        )
    spark_jobs = len(tracker.getJobIdsForGroup(ctx.run_id)) - jobs_before
    record.validation_evaluated = outcome.evaluated
    record.validation_failed = outcome.failed
    record.validation_report = outcome.data_docs or outcome.result_json
    record.details["validation"] = {
        "failures": outcome.failures,
        "spark_jobs": spark_jobs,
        "result_json": outcome.result_json,
        "seconds": {k: round(v, 3) for k, v in outcome.seconds.items()},
    }
    policy = job.validation.policy
    if outcome.failed and policy == "fail":
        _fail(
            ctx,
            f"validation failed, nothing published: {outcome.summary()} "
            f"(report: {record.validation_report})",
        )
    if policy == "quarantine":
        return _quarantine(ctx, partition, models, source, outcome, rules)
    if outcome.failed:
        record.validation_status = "warned"
        ctx.progress.stage(
            "validate", f"WARNING (policy warn, scoring anyway): {outcome.summary()}"
        )
    else:
        record.validation_status = "passed"
        ctx.progress.stage("validate", f"passed: {outcome.summary()} ({spark_jobs} Spark jobs)")
    return ValidatedInput(source, None, info.rows, cached=source.held)


def _rules(ctx: RunContext, partition: CheckedPartition, models: RunModels) -> list[Any]:
    """The job's expectations (defaults, declared, suite file) for this partition."""
    from lakescore.quality.validation import build_rules

    job, info = ctx.job, partition.info
    previous = tables.previous_partition_rows(
        job.features.table, job.features.partition_column, ctx.day, info.version
    )
    # An empty partition only gets here when the job allows publishing it: no row-count band.
    previous_rows = previous[1] if previous and info.rows != 0 else None
    return build_rules(job, models.model, previous_rows, ctx.platform.conf_dir)


def _quarantine(
    ctx: RunContext,
    partition: CheckedPartition,
    models: RunModels,
    source: PartitionSource,
    outcome: Any,
    rules: list[Any] | None,
) -> ValidatedInput:
    """Policy ``quarantine``: the rows that fail row-level expectations go aside, unless
    they are too many or a failed expectation is not about single rows. ``rules``: the
    suite's rules when it ran here, None when the outcome came from an earlier attempt.
    The partition is persisted (if validation did not already): the good rows are scored
    and the bad ones written from it."""
    from lakescore.quality.validation import split_rejects

    job, record = ctx.job, ctx.record
    not_row_level = [f["expectation"] for f in outcome.failures if not f["row_level"]]
    if not_row_level:
        _fail(
            ctx,
            "validation failed on expectations that cannot be quarantined row by row, "
            f"nothing published: {', '.join(not_row_level)}",
        )
    # With no failures this is an empty rejects set: it clears earlier rejects of the day.
    rows = source.df() if source.held else source.hold(source.df())
    if outcome.failed and rules is None:
        rules = _rules(ctx, partition, models)
    good, rejects = split_rejects(rows, rules if outcome.failed else [])
    rejects = source.hold(rejects)
    source.replace(good)
    rejected = rejects.count() if outcome.failed else 0
    total = partition.info.rows if partition.info.rows is not None else rows.count()
    record.rejected_rows = rejected
    fraction = rejected / total if total else 0.0
    if fraction > job.validation.max_reject_fraction:
        _fail(
            ctx,
            f"{rejected} of {total} rows ({fraction:.2%}) failed row-level expectations, "
            f"above max_reject_fraction {job.validation.max_reject_fraction:.2%}; nothing "
            f"published: {outcome.summary()}",
        )
    record.validation_status = "quarantined" if rejected else "passed"
    ctx.progress.stage("validate", f"{rejected} rows quarantined: {outcome.summary()}")
    return ValidatedInput(source, rejects, total - rejected, cached=True)


def _fail(ctx: RunContext, message: str) -> None:
    from lakescore.quality.validation import ValidationFailed

    ctx.record.validation_status = "failed"
    raise ValidationFailed(message, job=ctx.job.name, ds=ctx.ds)


def _earlier_validation(ctx: RunContext, input_version: int) -> Any:
    """The outcome of this Airflow run's ``validate`` attempt on the same snapshot, if any."""
    from lakescore.lakehouse.lineage import find_lineage
    from lakescore.quality.validation import ValidationOutcome

    record = ctx.record
    if not record.airflow.run_id:
        return None
    rows = find_lineage(
        ctx.platform.lineage_table,
        job=ctx.job.name,
        action="validate",
        ds=ctx.day,
        input_version=input_version,
        airflow_run_id=record.airflow.run_id,
    )
    rows = [r for r in rows if r["validation_status"] is not None]
    if not rows:
        return None
    row = rows[-1]
    details = json.loads(row["details"] or "{}").get("validation", {})
    record.details["validated_by"] = row["run_id"]
    failures = details.get("failures", [])
    return ValidationOutcome(
        status="passed" if not failures else "failed",
        evaluated=row["validation_evaluated"] or 0,
        failed=row["validation_failed"] or 0,
        failures=failures,
        result_json=details.get("result_json"),
        data_docs=row["validation_report"],
    )
