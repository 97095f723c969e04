"""Pure functions of DataFrames: score a feature partition, add the prediction columns, audit.

The model is loaded once per Python worker process (:func:`scorer_for` caches it; Spark reuses
workers), never once per batch. Batches arrive as Arrow record batches (``mapInArrow``) and
go to the model as one float64, Fortran-ordered array per batch, without a pandas round trip.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING

from lakescore import layout
from lakescore.errors import AuditFailure

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from lakescore.models import ProbabilityScorer, ResolvedModel

_SCORERS: dict[tuple[str, str, str], ProbabilityScorer] = {}


def scorer_for(model_dir: str, flavor: str, positive_class: int | str) -> ProbabilityScorer:
    """The process-wide scorer for a model directory (loaded on first use)."""
    key = (model_dir, flavor, repr(positive_class))
    if key not in _SCORERS:
        from lakescore.models import ProbabilityScorer

        _SCORERS[key] = ProbabilityScorer(model_dir, flavor, positive_class)
    return _SCORERS[key]


def _local_model_dir(model_dir: str, shipped_name: str | None) -> str:
    if shipped_name is None:
        return model_dir
    from pyspark import SparkFiles

    return SparkFiles.get(shipped_name)


def score_record_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    model_dir: str,
    shipped_name: str | None,
    flavor: str,
    positive_class: int | str,
    key_columns: list[str],
    feature_columns: list[str],
) -> Iterator[pa.RecordBatch]:
    """Runs in the Python worker: (keys + features) batches -> (keys + score) batches."""
    import numpy as np
    import pyarrow as pa

    scorer = scorer_for(_local_model_dir(model_dir, shipped_name), flavor, positive_class)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for batch in batches:
            rows = batch.num_rows
            if rows == 0:
                continue
            matrix = np.empty((rows, len(feature_columns)), dtype=np.float64, order="F")
            for j, name in enumerate(feature_columns):
                matrix[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
            scores = scorer.score(matrix)
            yield pa.RecordBatch.from_arrays(
                [*(batch.column(k) for k in key_columns), pa.array(scores, pa.float64())],
                names=[*key_columns, layout.SCORE],
            )


def score_features(
    features: DataFrame,
    model: ResolvedModel,
    model_dir: str,
    key_columns: list[str],
    feature_columns: list[str],
    shipped_name: str | None = None,
) -> DataFrame:
    """Keys + ``score`` for every row of ``features`` (a map: no shuffle)."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    key_fields = [features.schema[k] for k in key_columns]
    out_schema = StructType([*key_fields, StructField(layout.SCORE, DoubleType(), True)])
    worker = partial(
        score_record_batches,
        model_dir=model_dir,
        shipped_name=shipped_name,
        flavor=model.flavor,
        positive_class=model.positive_class,
        key_columns=key_columns,
        feature_columns=feature_columns,
    )
    return features.select(*key_columns, *feature_columns).mapInArrow(worker, out_schema)


def with_prediction_columns(
    scored: DataFrame,
    *,
    model: ResolvedModel,
    run_id: str,
    scored_at: datetime,
    partition_column: str,
    ds: date,
    key_columns: list[str],
) -> DataFrame:
    """The prediction-table layout: keys, score, model name/version, run id, time, partition."""
    from pyspark.sql import functions as F

    return scored.select(
        *key_columns,
        F.col(layout.SCORE),
        F.lit(model.name).alias(layout.MODEL_NAME),
        F.lit(model.version).cast("bigint").alias(layout.MODEL_VERSION),
        F.lit(run_id).alias(layout.RUN_ID),
        F.lit(scored_at).cast("timestamp").alias(layout.SCORED_AT),
        F.lit(ds).cast("date").alias(partition_column),
    )


@dataclass(frozen=True)
class AuditResult:
    rows: int
    expected_rows: int
    null_keys: int
    duplicate_keys: int
    non_finite_scores: int
    out_of_range_scores: int
    score_min: float | None
    score_max: float | None
    score_mean: float | None

    @property
    def problems(self) -> list[str]:
        found = []
        if self.rows != self.expected_rows:
            found.append(f"rows out {self.rows} != rows in {self.expected_rows}")
        if self.null_keys:
            found.append(f"{self.null_keys} rows with a null entity key")
        if self.duplicate_keys:
            found.append(f"{self.duplicate_keys} duplicate entity keys")
        if self.non_finite_scores:
            found.append(f"{self.non_finite_scores} scores are null, NaN or infinite")
        if self.out_of_range_scores:
            found.append(f"{self.out_of_range_scores} scores outside the allowed range")
        return found


def audit_scores(
    staged: DataFrame,
    *,
    expected_rows: int,
    key_columns: list[str],
    score_min: float,
    score_max: float,
) -> AuditResult:
    """One aggregation over the staged output: counts, key nulls/duplicates, score range."""
    from pyspark.sql import functions as F

    score = F.col(layout.SCORE)
    bad = score.isNull() | F.isnan(score) | (F.abs(score) == F.lit(math.inf))
    any_null_key = F.lit(False)
    for key in key_columns:
        any_null_key = any_null_key | F.col(key).isNull()
    row = staged.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(any_null_key.cast("long")).alias("null_keys"),
        F.count_distinct(*[F.col(k) for k in key_columns]).alias("distinct_keys"),
        F.sum(bad.cast("long")).alias("non_finite"),
        F.sum((~bad & ((score < score_min) | (score > score_max))).cast("long")).alias("oor"),
        F.min(F.when(~bad, score)).alias("smin"),
        F.max(F.when(~bad, score)).alias("smax"),
        F.avg(F.when(~bad, score)).alias("smean"),
    ).first()
    assert row is not None
    rows = int(row["rows"])
    null_keys = int(row["null_keys"] or 0)
    return AuditResult(
        rows=rows,
        expected_rows=expected_rows,
        null_keys=null_keys,
        duplicate_keys=rows - null_keys - int(row["distinct_keys"] or 0),
        non_finite_scores=int(row["non_finite"] or 0),
        out_of_range_scores=int(row["oor"] or 0),
        score_min=row["smin"],
        score_max=row["smax"],
        score_mean=row["smean"],
    )


def require_clean_audit(result: AuditResult, *, job: str, ds: str) -> None:
    if result.problems:
        raise AuditFailure(
            "audit failed, nothing published: " + "; ".join(result.problems), job=job, ds=ds
        )
