"""Stage ``score``: every model scores the partition in one pass and the scores are written
where no reader sees them yet (see :mod:`lakescore.run.score_path` for where and how).

The audit's and the drift histogram's partial sums come back with the write: from the
writing tasks themselves (``python`` writer), or as Spark observed metrics riding on the
write (``spark`` writer), so neither needs a pass of its own over the scored rows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakescore.errors import ScoringFailure
from lakescore.lakehouse import layout
from lakescore.ml import shadow as shadow_scoring
from lakescore.ml.file_scoring import (
    FileOutput,
    WrittenFiles,
    score_partition_files,
    write_partition_files,
)
from lakescore.ml.scoring import (
    ModelSlot,
    ValueCheck,
    audit_expressions,
    score_models,
    with_prediction_columns,
)
from lakescore.quality.monitoring import distribution_expressions, label_expressions
from lakescore.run.context import RunContext
from lakescore.run.progress import watch_tasks
from lakescore.run.record import record_executor_losses, task_metrics
from lakescore.run.resolve import RunModels
from lakescore.run.score_path import ChosenPath
from lakescore.run.validate import ValidatedInput
from lakescore.storage import spark_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakescore.ml.models import ResolvedModel


@dataclass
class ScoringPlan:
    """What the score stage needs besides the session: the models in their slots (champion
    first), the feature value check, the output layout and the chosen path."""

    slots: list[ModelSlot]
    check: ValueCheck
    key_fields: list[Any]
    scored_at: datetime
    chosen: ChosenPath


@dataclass
class ScoredOutput:
    """Where the scores were written, and the sums the audit and drift need."""

    written_to: str
    observed: dict[str, Any]
    task_files: WrittenFiles | None  # the python writer's files and per-output summaries
    scored: DataFrame | None  # the spark writer's scored rows (the audit's failure path)
    in_table: bool  # written into the prediction table's folder (``commit`` path)


def score_stage(
    ctx: RunContext,
    spark: SparkSession,
    models: RunModels,
    validated: ValidatedInput,
    plan: ScoringPlan,
) -> ScoredOutput:
    rows = validated.expected_rows
    record = ctx.record
    with ctx.stages("score", f"{rows if rows is not None else '?'} rows -> staging"):
        batch_rows = max(
            1_000, int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "100000"))
        )
        try:
            if plan.chosen.path.writer == "python":
                scored = _write_in_tasks(ctx, spark, models, plan, batch_rows)
            else:
                scored = _write_with_spark(ctx, spark, models, validated, plan, batch_rows)
        except Exception as exc:
            failure = worker_failure(exc, models.model, job=ctx.job.name, ds=ctx.ds)
            if failure is None:
                raise
            raise failure from exc
        record.details["score_writer"] = plan.chosen.path.writer
        record.executor_seconds, record.failed_tasks = task_metrics(spark, ctx.run_id)
        record.details["source_scan"] = shadow_scoring.source_scan(
            spark, ctx.run_id, ctx.job.features.table
        )
        record_executor_losses(spark, record)
    return scored


def _write_in_tasks(
    ctx: RunContext, spark: SparkSession, models: RunModels, plan: ScoringPlan, batch_rows: int
) -> ScoredOutput:
    """The tasks write the files to publish themselves and return the audit's and the
    histogram's partial sums: no scored row goes through the JVM."""
    job, model = ctx.job, models.model
    part_col = job.features.partition_column
    histogram = models.histogram or job.audit.bounds(model.task)
    assert plan.chosen.plan is not None and plan.chosen.data_dir is not None
    output = FileOutput(
        folder=plan.chosen.data_dir,
        schema=layout.data_file_schema(
            layout.prediction_schema(plan.key_fields, part_col, model.task), part_col
        ),
        constants={
            layout.MODEL_NAME: model.name,
            layout.MODEL_VERSION: int(model.version),
            layout.RUN_ID: ctx.run_id,
            layout.SCORED_AT: plan.scored_at,
        },
        label_column=plan.slots[0].label_column,
        probabilities_column=plan.slots[0].probabilities_column,
        low=histogram[0],
        high=histogram[1],
        audit_low=job.audit.bounds(model.task)[0],
        audit_high=job.audit.bounds(model.task)[1],
        classes=tuple(models.classes),
        bins=job.monitoring.bins,
    )
    shadow_outputs = [
        shadow_scoring.shadow_file_output(
            c,
            job=job,
            ds=ctx.day,
            run_id=ctx.run_id,
            scored_at=plan.scored_at,
            key_fields=plan.key_fields,
        )
        for c in models.active_challengers
    ]
    with watch_tasks(spark, ctx.run_id, ctx.progress):
        files = write_partition_files(
            spark,
            plan.chosen.plan,
            plan.slots,
            job.features.entity_keys,
            [output, *shadow_outputs],
            batch_rows=batch_rows,
            check=plan.check,
        )
    return ScoredOutput(
        plan.chosen.data_dir, files.summaries[0].metrics(), files, None, in_table=True
    )


def _write_with_spark(
    ctx: RunContext,
    spark: SparkSession,
    models: RunModels,
    validated: ValidatedInput,
    plan: ScoringPlan,
    batch_rows: int,
) -> ScoredOutput:
    """Spark writes the scored rows (read by either reader); the audit's and the drift
    histogram's aggregates ride on the write as observed metrics."""
    from pyspark.sql import Observation

    job = ctx.job
    keys, part_col = job.features.entity_keys, job.features.partition_column
    low, high = job.audit.bounds(models.model.task)
    histogram = models.histogram or (low, high)
    if plan.chosen.plan is not None:
        scored = score_partition_files(
            spark, plan.chosen.plan, plan.slots, keys, batch_rows=batch_rows, check=plan.check
        )
    else:
        split_for_parallelism(spark, validated.source.size_bytes)
        scored = score_models(validated.source.df(), plan.slots, keys, plan.check)
    out = with_prediction_columns(
        scored,
        model=models.model,
        run_id=ctx.run_id,
        scored_at=plan.scored_at,
        partition_column=part_col,
        ds=ctx.day,
        key_columns=keys,
        extra_columns=[
            *(c for slot in plan.slots[1:] for c in slot.output_columns),
            layout.BAD_VALUES,
        ],
    )
    observation = Observation(f"lakescore_audit_{uuid.uuid4().hex}")
    to_write = out.observe(
        observation,
        *audit_expressions(keys, score_min=low, score_max=high, checked=True),
        *distribution_expressions(*histogram, job.monitoring.bins, quantiles=False),
        *label_expressions(models.classes),
    )
    data_dir = plan.chosen.data_dir
    if data_dir is not None:  # the published layout: no partition column in the files
        to_write = to_write.select(
            *(
                c
                for c in layout.prediction_columns(keys, part_col, models.model.task)
                if c != part_col
            )
        )
    written_to = data_dir or str(ctx.staging_dir)
    with watch_tasks(spark, ctx.run_id, ctx.progress):
        to_write.write.mode("errorifexists").parquet(spark_path(written_to))
    return ScoredOutput(written_to, observation.get, None, out, in_table=data_dir is not None)


_PYTHON_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Failure|Exit)): ?(.*)$")


def worker_failure(
    exc: BaseException, model: ResolvedModel, *, job: str, ds: str
) -> ScoringFailure | None:
    """One line for an exception raised inside a Spark Python worker (the model's predict,
    a feature it cannot take): the job, partition and model, and the worker's own error
    line, instead of Spark's text (a JVM stack trace around a Python traceback). None when
    ``exc`` did not come from a Python worker. The cause keeps the full text (``-v``)."""
    text = str(exc)
    if type(exc).__name__ != "PythonException" and "Python worker" not in text:
        return None
    lines = [m for line in text.splitlines() if (m := _PYTHON_ERROR.match(line.strip()))]
    if lines:
        name, message = lines[-1].group(1), lines[-1].group(2)
        # lakescore's own errors already name what they are about; others keep their type.
        error = (
            message if name.startswith("lakescore.") else f"{name.rsplit('.', 1)[-1]}: {message}"
        )
    else:
        error = "see -v for the worker's traceback"
    return ScoringFailure(
        f"model {model.name} version {model.version} ({model.flavor}) failed in a Spark "
        f"Python worker: {error[:500]}",
        job=job,
        ds=ds,
    )


def split_for_parallelism(spark: SparkSession, partition_bytes: int) -> None:
    """Let a partition stored in few large files still spread over every core."""
    target_tasks = max(2, 2 * spark.sparkContext.defaultParallelism)
    max_bytes = max(1 << 20, min(128 << 20, partition_bytes // target_tasks + 1))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(max_bytes))
