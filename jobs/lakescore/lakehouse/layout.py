"""Column layout of the tables lakescore owns: the prediction table and the lineage table.

One definition, used by the Spark job (writes), the delta-rs readers (API, SQL, Airflow) and
the tests. Arrow schemas are the source of truth; Spark types are derived from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

SCORE = "score"
# A multiclass model's predicted class and every class's probability (after ``score``, which
# is then the predicted class's probability).
LABEL = "label"
PROBABILITIES = "probabilities"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
RUN_ID = "run_id"
SCORED_AT = "scored_at"
# Added after the entity keys, before the partition column, in this order.
PREDICTION_COLUMNS = (SCORE, MODEL_NAME, MODEL_VERSION, RUN_ID, SCORED_AT)
# Staged output only (never published): the refused feature values of a row, as
# "column:inf,column:nan"; null for a clean row (see lakescore.ml.scoring.ValueCheck).
BAD_VALUES = "_lakescore_bad_values"


# The table property that records which kind of model's predictions a prediction (or shadow)
# table holds: binary | multiclass | regression. Set when lakescore creates the table.
TASK_PROPERTY = "lakescore.task"
# What ``score`` is, per task.
SCORE_MEANING = {
    "binary": "P(positive class)",
    "multiclass": "the predicted class's probability",
    "regression": "the predicted value",
}


def task_from_columns(columns: Sequence[str]) -> str | None:
    """The task a table's columns alone tell: multiclass with label and probabilities,
    else None (binary and regression tables have the same columns)."""
    return "multiclass" if LABEL in columns and PROBABILITIES in columns else None


def layout_difference(
    found: Sequence[str], found_task: str | None, expected: Sequence[str], task: str
) -> str | None:
    """How an existing table (its ``found`` columns, the task it records) differs from the
    layout a run of ``task`` writes (``expected`` columns); None when the run may publish into
    it. Column order does not matter (readers and writers go by name)."""
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"the table has no column {', '.join(missing)}")
    if extra:
        parts.append(f"the table has column {', '.join(extra)}, which a {task} run does not write")
    if not parts and found_task is not None and found_task != task:
        parts.append(
            f"column {SCORE} holds {SCORE_MEANING.get(found_task, found_task)} there, "
            f"{SCORE_MEANING.get(task, task)} in this run"
        )
    return "; ".join(parts) or None


def class_columns(task: str) -> tuple[str, ...]:
    """The columns a task adds after ``score``: label and probabilities for multiclass."""
    return (LABEL, PROBABILITIES) if task == "multiclass" else ()


def prediction_columns(
    entity_keys: list[str], partition_column: str, task: str = "binary"
) -> list[str]:
    return [
        *entity_keys,
        SCORE,
        *class_columns(task),
        *PREDICTION_COLUMNS[1:],
        partition_column,
    ]


def probabilities_type() -> pa.DataType:
    import pyarrow as pa

    return pa.map_(pa.string(), pa.field("value", pa.float64(), nullable=False))


def prediction_schema(
    key_fields: list[pa.Field], partition_column: str, task: str = "binary"
) -> pa.Schema:
    """Entity keys (their feature-table types) + score (+ label and probabilities for a
    multiclass model) + model + run + partition date."""
    import pyarrow as pa

    classes = (
        [
            pa.field(LABEL, pa.string(), nullable=False),
            pa.field(PROBABILITIES, probabilities_type(), nullable=False),
        ]
        if task == "multiclass"
        else []
    )
    return pa.schema(
        [
            *[f.with_nullable(False) for f in key_fields],
            pa.field(SCORE, pa.float64(), nullable=False),
            *classes,
            pa.field(MODEL_NAME, pa.string(), nullable=False),
            pa.field(MODEL_VERSION, pa.int64(), nullable=False),
            pa.field(RUN_ID, pa.string(), nullable=False),
            pa.field(SCORED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field(partition_column, pa.date32(), nullable=False),
        ]
    )


def data_file_schema(table_schema: pa.Schema, partition_column: str) -> pa.Schema:
    """A table's data files: every column but the partition (it lives in the Delta log), all
    nullable as Spark writes them; the publish commit checks the null counts."""
    import pyarrow as pa

    return pa.schema([f.with_nullable(True) for f in table_schema if f.name != partition_column])


def lineage_schema() -> pa.Schema:
    """One row per run attempt (and per rollback / erasure later). Append-only."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("attempt_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("action", pa.string(), nullable=False),
            pa.field("job", pa.string(), nullable=False),
            pa.field("ds", pa.date32()),
            pa.field("status", pa.string(), nullable=False),
            pa.field("error_class", pa.string()),
            pa.field("error", pa.string()),
            pa.field("started_at", ts, nullable=False),
            pa.field("finished_at", ts, nullable=False),
            pa.field("duration_s", pa.float64()),
            pa.field("stage_seconds", pa.map_(pa.string(), pa.float64())),
            pa.field("airflow_dag_id", pa.string()),
            pa.field("airflow_run_id", pa.string()),
            pa.field("airflow_task_id", pa.string()),
            pa.field("airflow_try_number", pa.int64()),
            pa.field("input_table", pa.string()),
            pa.field("input_version", pa.int64()),
            pa.field("input_rows", pa.int64()),
            pa.field("validation_status", pa.string()),
            pa.field("validation_evaluated", pa.int64()),
            pa.field("validation_failed", pa.int64()),
            pa.field("validation_report", pa.string()),
            pa.field("rejected_rows", pa.int64()),
            pa.field("drift_status", pa.string()),
            pa.field("psi_previous", pa.float64()),
            pa.field("psi_baseline", pa.float64()),
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.int64()),
            pa.field("model_alias", pa.string()),
            pa.field("model_run_id", pa.string()),
            pa.field("model_source", pa.string()),
            pa.field("output_table", pa.string()),
            pa.field("output_version", pa.int64()),
            pa.field("output_rows", pa.int64()),
            pa.field("spark_app_id", pa.string()),
            pa.field("spark_master", pa.string()),
            pa.field("rows_per_s", pa.float64()),
            pa.field("executor_seconds", pa.float64()),
            pa.field("failed_tasks", pa.int64()),
            pa.field("code_version", pa.string()),
            pa.field("user", pa.string()),
            pa.field("host", pa.string()),
            pa.field("details", pa.string()),
            # governance (rollback / erasure) and cost; appended: old tables evolve on append
            pa.field("reason", pa.string()),
            pa.field("cost", pa.float64()),
            pa.field("cost_per_1k", pa.float64()),
            # executors the Spark application lost during the run (killed, preempted,
            # decommissioned); see lakescore.ops.executors
            pa.field("lost_executors", pa.int64()),
        ]
    )


def rejects_columns() -> tuple[str, ...]:
    """Added to the feature columns of a rejected row (rejects table, partitioned like the
    feature table)."""
    return ("failed_expectations", RUN_ID, "rejected_at")


def metrics_schema() -> pa.Schema:
    """One row per scored partition (published or refused): the score distribution and its
    drift (PSI) against the previous published partition and the training baseline."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("job", pa.string(), nullable=False),
            pa.field("ds", pa.date32(), nullable=False),
            pa.field("role", pa.string(), nullable=False),  # "champion" | "challenger"
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.int64()),
            pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("published", pa.bool_(), nullable=False),
            pa.field("drift_status", pa.string(), nullable=False),  # ok | warn | fail
            pa.field("rows", pa.int64()),
            pa.field("mean", pa.float64()),
            pa.field("std", pa.float64()),
            pa.field("min", pa.float64()),
            pa.field("max", pa.float64()),
            pa.field("quantiles", pa.map_(pa.string(), pa.float64())),
            pa.field("bin_edges", pa.list_(pa.float64())),
            pa.field("bin_counts", pa.list_(pa.int64())),
            pa.field("previous_ds", pa.date32()),
            pa.field("psi_previous", pa.float64()),
            pa.field("baseline_bin_counts", pa.list_(pa.int64())),
            pa.field("psi_baseline", pa.float64()),
            # role = "challenger" rows: the comparison with the champion of the same run
            pa.field("champion_version", pa.int64()),
            pa.field("model_reference", pa.string()),  # as configured: name@alias / name/3
            pa.field("challenger_status", pa.string()),  # ok | failed
            pa.field("challenger_error", pa.string()),
            pa.field("score_correlation", pa.float64()),
            pa.field("mean_difference", pa.float64()),  # challenger - champion
            pa.field("psi_champion", pa.float64()),
            pa.field("decision_threshold", pa.float64()),
            pa.field("decision_flip_share", pa.float64()),
            # a multiclass champion: bin_counts are rows per predicted class, named here
            pa.field("bin_labels", pa.list_(pa.string())),
        ]
    )


ROLE = "role"
MODEL_REFERENCE = "model_reference"


def shadow_columns(
    entity_keys: list[str], partition_column: str, task: str = "binary"
) -> list[str]:
    """The shadow table: the prediction layout of the challengers' ``task`` (a multiclass
    challenger's label and probabilities too) plus ``role`` and ``model_reference``."""
    return [
        *prediction_columns(entity_keys, partition_column, task)[:-1],
        ROLE,
        MODEL_REFERENCE,
        partition_column,
    ]


def shadow_schema(
    key_fields: list[pa.Field], partition_column: str, task: str = "binary"
) -> pa.Schema:
    """Challenger scores: one row per (entity, challenger) and partition."""
    import pyarrow as pa

    base = prediction_schema(key_fields, partition_column, task)
    fields = [f for f in base if f.name != partition_column]
    return pa.schema(
        [
            *fields,
            pa.field(ROLE, pa.string(), nullable=False),
            pa.field(MODEL_REFERENCE, pa.string(), nullable=False),
            base.field(partition_column),
        ]
    )
