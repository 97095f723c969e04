"""Pure functions of DataFrames: score a feature partition, add the prediction columns, audit.

Every model (the champion and any shadow challengers) is loaded once per Python worker process
(:func:`scorer_for` caches it; Spark reuses workers), never once per batch. Batches arrive as
Arrow record batches (``mapInArrow``) and go to each model in the form its flavor takes: one
float64, row-major array per batch without a pandas round trip for native models over numeric
inputs (:func:`feature_matrix`), otherwise a pandas DataFrame with the signature's column names
and types (:func:`feature_frame`). The partition is read once, whatever the model count.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from lakescore.errors import AuditFailure
from lakescore.lakehouse import layout
from lakescore.storage import filesystem_and_path, is_object_store

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructField, StructType

    from lakescore.ml.models import ModelScorer, Prediction, ResolvedModel, ScorerSpec

_SCORERS: dict[tuple[str, ScorerSpec], ModelScorer] = {}


def scorer_for(model_dir: str, spec: ScorerSpec, estimator: Any = None) -> ModelScorer:
    """The process-wide scorer for a model (built on first use): from ``estimator``, a Spark
    broadcast of the driver's native (scikit-learn, XGBoost, LightGBM) estimator, when there is
    one, else loaded from ``model_dir`` with MLflow. A model directory is one registered
    version: with the spec, the cache key."""
    key = (model_dir, spec)
    if key not in _SCORERS:
        from lakescore.ml.models import ModelScorer

        native = estimator.value if estimator is not None else None
        _SCORERS[key] = ModelScorer(model_dir, spec, native)
    return _SCORERS[key]


def _local_model_dir(model_dir: str, shipped_name: str | None) -> str:
    if shipped_name is None:
        return model_dir
    from pyspark import SparkFiles

    return SparkFiles.get(shipped_name)


@dataclass(frozen=True)
class ModelSlot:
    """One model of a scoring pass and the output column its scores go to.

    ``required``: the champion; a load or predict error fails the Spark task (and so the
    run). A challenger (``required=False``) that cannot load or score yields null scores for
    the rows it missed; the driver then records it as failed without blocking the champion.
    """

    score_column: str
    model_dir: str
    spec: ScorerSpec
    feature_columns: tuple[str, ...]  # in the model's signature order
    shipped_name: str | None = None
    required: bool = True
    # A Spark broadcast of the driver's loaded native estimator: the workers unpickle it
    # (with scikit-learn / XGBoost / LightGBM only; importing MLflow costs each worker
    # seconds). None: load the model from ``model_dir`` / the shipped archive (pyfunc).
    estimator: Any = None
    # A multiclass champion's predicted class and class probabilities go to these columns.
    label_column: str | None = None
    probabilities_column: str | None = None

    @classmethod
    def of(
        cls,
        model: ResolvedModel,
        model_dir: str,
        feature_columns: Sequence[str],
        *,
        score_column: str = layout.SCORE,
        shipped_name: str | None = None,
        required: bool = True,
        estimator: Any = None,
        class_columns: tuple[str, str] = (layout.LABEL, layout.PROBABILITIES),
    ) -> ModelSlot:
        """The slot of a model whose task is decided (after ``check_model_loadable``); a
        multiclass model also fills the label and probabilities columns (``class_columns``;
        a challenger's are its own)."""
        from lakescore.ml.models import ScorerSpec

        classes = model.task == "multiclass"
        return cls(
            score_column=score_column,
            model_dir=model_dir,
            spec=ScorerSpec.of(model),
            feature_columns=tuple(feature_columns),
            shipped_name=shipped_name,
            required=required,
            estimator=estimator,
            label_column=class_columns[0] if classes else None,
            probabilities_column=class_columns[1] if classes else None,
        )

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The scored batch's columns of this model: score (label, probabilities)."""
        return tuple(
            c
            for c in (self.score_column, self.label_column, self.probabilities_column)
            if c is not None
        )


_FAILED_LOADS: dict[tuple[str, ScorerSpec], str] = {}


def _scorer_or_none(slot: ModelSlot) -> ModelScorer | None:
    """The slot's scorer; for a challenger, None (once per process, logged) if it cannot load."""
    model_dir = (
        slot.model_dir
        if slot.estimator is not None
        else _local_model_dir(slot.model_dir, slot.shipped_name)
    )
    if slot.required:
        return scorer_for(model_dir, slot.spec, slot.estimator)
    key = (model_dir, slot.spec)
    if key in _FAILED_LOADS:
        return None
    try:
        return scorer_for(model_dir, slot.spec, slot.estimator)
    except Exception as exc:  # a challenger never fails the pass
        _FAILED_LOADS[key] = f"{type(exc).__name__}: {exc}"
        print(f"lakescore: challenger {slot.score_column} not loaded: {exc}", file=sys.stderr)
        return None


@dataclass(frozen=True)
class ValueCheck:
    """Feature values the scoring pass refuses: infinite always, NaN unless ``allow_nan``.

    Checked in the Python worker on the batches it scores anyway (no extra read of the
    partition). A row holding such a value is not scored; the staged output names its
    columns in :data:`lakescore.lakehouse.layout.BAD_VALUES` and the audit refuses the partition."""

    columns: tuple[str, ...]
    allow_nan: bool


_KIND_TEXT = {"inf": "infinite values", "nan": "NaN values (features.allow_nan is false)"}


def bad_value_flags(batch: pa.RecordBatch, check: ValueCheck) -> pa.Array | None:
    """None when every checked value of the batch is fine (one vectorised pass per column),
    else one string per row: ``"col:inf,col2:nan"`` where refused values are, null elsewhere.
    Null is a missing value, not NaN: only float columns' NaN and infinities count."""
    import numpy as np
    import pyarrow as pa

    found: list[tuple[str, np.ndarray]] = []
    for name in check.columns:
        column = batch.column(name)
        if not pa.types.is_floating(column.type):
            continue
        values = column.to_numpy(zero_copy_only=False)  # nulls become NaN
        if np.isfinite(values).all():
            continue
        infinite = np.isinf(values)
        if infinite.any():
            found.append((f"{name}:inf", infinite))
        if not check.allow_nan:
            nan = np.isnan(values)
            if column.null_count:
                nan &= ~column.is_null().to_numpy(zero_copy_only=False)
            if nan.any():
                found.append((f"{name}:nan", nan))
    if not found:
        return None
    bad = np.zeros(batch.num_rows, dtype=bool)
    for _, mask in found:
        bad |= mask
    flags: list[str | None] = [None] * batch.num_rows
    for row in np.flatnonzero(bad):
        flags[row] = ",".join(label for label, mask in found if mask[row])
    return pa.array(flags, pa.string())


def describe_bad_values(counts: dict[str, int], columns: Sequence[str]) -> list[tuple[str, str]]:
    """(column, "column 'x' has N infinite values") in feature order, from counts of the
    ``column:kind`` labels of :func:`bad_value_flags`."""
    out = []
    for name in columns:
        for kind, text in _KIND_TEXT.items():
            if n := counts.get(f"{name}:{kind}"):
                out.append((name, f"column {name!r} has {n} {text}"))
    return out


def feature_matrix(batch: pa.RecordBatch, columns: Sequence[str]) -> np.ndarray:
    """The batch's feature columns as one float64 matrix (rows x features), row-major: tree
    ensembles walk one row's features at a time (HistGradientBoosting predicts 4% faster
    from it than from a column-major copy, which costs 3 ms less per 100,000 x 30 batch)."""
    import numpy as np

    matrix = np.empty((batch.num_rows, len(columns)), dtype=np.float64, order="C")
    for j, name in enumerate(columns):
        matrix[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
    return matrix


def feature_frame(
    batch: pa.RecordBatch, inputs: Sequence[tuple[str, str]], *, categorical: bool = False
) -> pd.DataFrame:
    """The batch's feature columns as a pandas DataFrame with the signature's names, in its
    order and with its types (what ``mlflow.pyfunc`` enforces and a pipeline's
    ``ColumnTransformer`` selects by name): each column is cast to the signature's Arrow type
    (``float`` -> float32, ``long`` -> int64, ``datetime`` -> naive timestamps, ...). Nulls
    stay missing values: NaN in float columns, None in strings; an integer column with nulls
    becomes float64 with NaN, as MLflow asks of integer features with missing values.
    ``categorical``: string columns become pandas categoricals (what XGBoost and LightGBM
    take for categorical features)."""
    import pyarrow as pa

    from lakescore.ml.models import type_family

    targets = _arrow_targets()
    arrays = []
    for name, sig_type in inputs:
        column = batch.column(name)
        target = targets.get(type_family(sig_type))
        if target is not None and column.type != target:
            column = column.cast(target)
        arrays.append(column)
    frame = pa.Table.from_arrays(arrays, names=[name for name, _ in inputs]).to_pandas()
    if categorical:
        for name, sig_type in inputs:
            if type_family(sig_type) == "string":
                frame[name] = frame[name].astype("category")
    return frame


@cache
def _arrow_targets() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "double": pa.float64(),
        "float": pa.float32(),
        "long": pa.int64(),
        "integer": pa.int32(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "datetime": pa.timestamp("ns"),
        "binary": pa.binary(),
    }


def score_batch(
    batch: pa.RecordBatch,
    scorers: Sequence[tuple[ModelSlot, ModelScorer | None]],
    key_columns: Sequence[str],
    check: ValueCheck | None = None,
) -> pa.RecordBatch:
    """The per-batch core: keys + each model's output columns, every model on the same batch
    (one model input per distinct signature and input form). With ``check``, rows holding a
    refused value get null predictions and are named in a last :data:`layout.BAD_VALUES`
    column."""
    import pyarrow as pa

    rows = batch.num_rows
    flags = bad_value_flags(batch, check) if check is not None else None
    good = None if flags is None else flags.is_null().to_numpy(zero_copy_only=False)
    # The models get only the rows that passed the check: with NaN refused, every value of
    # the checked columns they see is finite.
    checked = set(check.columns) if check is not None and not check.allow_nan else set()
    kept = batch if good is None else batch.filter(pa.array(good))
    model_inputs: dict[Any, Any] = {}
    arrays = [batch.column(k) for k in key_columns]
    names = list(key_columns)
    for slot, scorer in scorers:
        prediction = None
        if scorer is not None:
            if scorer.takes_matrix:
                form: Any = ("matrix", slot.feature_columns)
                if form not in model_inputs:
                    model_inputs[form] = feature_matrix(kept, slot.feature_columns)
            else:
                form = ("frame", slot.spec.inputs, scorer.categorical)
                if form not in model_inputs:
                    model_inputs[form] = feature_frame(
                        kept, slot.spec.inputs, categorical=scorer.categorical
                    )
            features = model_inputs[form]
            finite = checked.issuperset(slot.feature_columns)
            if slot.required:
                prediction = scorer.score(features, finite=finite)
            else:
                try:
                    prediction = scorer.score(features, finite=finite)
                    if len(prediction.score) != features.shape[0]:
                        raise ValueError(
                            f"{len(prediction.score)} scores for {features.shape[0]} rows"
                        )
                except Exception as exc:  # a challenger never fails the pass
                    print(f"lakescore: challenger {slot.score_column}: {exc}", file=sys.stderr)
                    prediction = None
        for name, array in _prediction_arrays(slot, prediction, rows, good):
            names.append(name)
            arrays.append(array)
    if check is not None:
        arrays.append(flags if flags is not None else pa.nulls(rows, pa.string()))
        names.append(layout.BAD_VALUES)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _prediction_arrays(
    slot: ModelSlot, prediction: Prediction | None, rows: int, good: np.ndarray | None
) -> list[tuple[str, pa.Array]]:
    """The slot's output columns for all ``rows`` of the batch (null where ``good`` is False
    or the model did not score): score, and label + probabilities when the slot has them."""
    import numpy as np
    import pyarrow as pa

    out: list[tuple[str, pa.Array]] = []
    mask = None if good is None else ~good
    if prediction is None:
        out.append((slot.score_column, pa.nulls(rows, pa.float64())))
    elif good is None:
        out.append((slot.score_column, pa.array(prediction.score, pa.float64())))
    else:
        full = np.full(rows, np.nan)
        full[good] = prediction.score
        out.append((slot.score_column, pa.array(full, pa.float64(), mask=mask)))
    if slot.label_column is None or slot.probabilities_column is None:
        return out
    if prediction is None or prediction.label is None:
        out.append((slot.label_column, pa.nulls(rows, pa.string())))
        out.append((slot.probabilities_column, pa.nulls(rows, layout.probabilities_type())))
        return out
    labels = prediction.label
    proba = np.asarray(prediction.probabilities, dtype=np.float64)
    classes = proba.shape[1]
    if good is not None:
        full_labels = np.full(rows, None, dtype=object)
        full_labels[good] = labels
        labels = full_labels
        full_proba = np.zeros((rows, classes))
        full_proba[good] = proba
        proba = full_proba
    class_names = prediction.class_names or [str(i) for i in range(classes)]
    names = pa.array(np.tile(np.asarray(class_names, dtype=object), rows), pa.string())
    offsets = pa.array(np.arange(0, rows * classes + 1, classes, dtype=np.int32))
    probabilities = pa.MapArray.from_arrays(
        offsets,
        names,
        pa.array(proba.ravel(), pa.float64()),
        mask=None if mask is None else pa.array(mask),
    )
    out.append((slot.label_column, pa.array(labels, pa.string())))
    out.append((slot.probabilities_column, probabilities))
    return out


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# Free memory a scoring worker keeps at the top of its heap instead of returning it.
KEPT_FREE_BYTES = 256 * 1024 * 1024


@cache
def keep_freed_memory() -> bool:
    """Runs in the Python worker, once: glibc's malloc keeps freed memory for the next batch.

    Each batch allocates arrays of ~25 MB (the feature matrix, the model's scaled copy, its
    outputs). By default glibc hands the freed ones back to the kernel, so the next batch
    page-faults fresh zeroed pages: 0.09-0.17 s of kernel time in a 0.40 s task (1M rows,
    scaler + logistic regression), 0.34 s in all with this setting. Large blocks from the
    heap (no mmap) and a trim threshold of :data:`KEPT_FREE_BYTES` let the next batch reuse
    them, and Arrow allocates from the same heap. The memory kept is one batch's working set,
    whatever the partition size. False where the C library has no ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES)):
        return False
    # Arrow's buffers too (the decoded columns of each batch): its default pool, mimalloc,
    # returns freed pages to the kernel within milliseconds, so a batch that takes longer
    # than that (a tree ensemble's) faulted them in again: 28,000 faults per 1M rows -> 5,000.
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    return True


def score_record_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    slots: Sequence[ModelSlot],
    key_columns: Sequence[str],
    check: ValueCheck | None = None,
) -> Iterator[pa.RecordBatch]:
    """Runs in the Python worker: (keys + features) batches -> (keys + one score column per
    model) batches. Every model is loaded once per worker process and scores every batch."""
    keep_freed_memory()
    scorers = [(slot, _scorer_or_none(slot)) for slot in slots]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for batch in batches:
            if batch.num_rows:
                yield score_batch(batch, scorers, key_columns, check)


def scored_schema(
    key_fields: Sequence[StructField], slots: Sequence[ModelSlot], check: ValueCheck | None
) -> StructType:
    """Keys, each slot's columns (a double; a multiclass champion's label string and
    probabilities map after it), and the :data:`layout.BAD_VALUES` string with ``check``."""
    from pyspark.sql.types import DoubleType, MapType, StringType, StructField, StructType

    fields = list(key_fields)
    for slot in slots:
        fields.append(StructField(slot.score_column, DoubleType(), True))
        if slot.label_column is not None and slot.probabilities_column is not None:
            fields.append(StructField(slot.label_column, StringType(), True))
            probabilities = MapType(StringType(), DoubleType(), False)
            fields.append(StructField(slot.probabilities_column, probabilities, True))
    if check is not None:
        fields.append(StructField(layout.BAD_VALUES, StringType(), True))
    return StructType(fields)


def _import_scoring_modules(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker: the imports of the scoring pass (scikit-learn takes seconds)."""
    import sklearn.base  # noqa: F401

    import lakescore.ml.models  # noqa: F401

    yield from batches


def warm_python_workers(spark: SparkSession) -> None:
    """Start one Python worker per core and import what scoring needs, so the first scoring
    job reuses warm workers (``spark.python.worker.reuse``). Called from the thread that
    starts the session, while the driver loads the model: the imports overlap that work."""
    tasks = spark.sparkContext.defaultParallelism
    spark.range(0, tasks, numPartitions=tasks).mapInArrow(
        _import_scoring_modules, "id long"
    ).collect()


def score_models(
    features: DataFrame,
    slots: Sequence[ModelSlot],
    key_columns: Sequence[str],
    check: ValueCheck | None = None,
) -> DataFrame:
    """Keys + one score column per slot for every row of ``features``: one map over the
    partition (no shuffle), all models in the same pass over the same Arrow batches."""
    if not slots or not slots[0].required:
        raise ValueError("the first slot is the champion (required)")
    out_schema = scored_schema([features.schema[k] for k in key_columns], slots, check)
    columns = list(dict.fromkeys(c for slot in slots for c in slot.feature_columns))
    worker = partial(
        score_record_batches, slots=list(slots), key_columns=list(key_columns), check=check
    )
    return features.select(*key_columns, *columns).mapInArrow(worker, out_schema)


def score_features(
    features: DataFrame,
    model: ResolvedModel,
    model_dir: str,
    key_columns: list[str],
    feature_columns: list[str],
    shipped_name: str | None = None,
) -> DataFrame:
    """Keys + ``score`` for every row of ``features`` with one model (see :func:`score_models`)."""
    slot = ModelSlot.of(model, model_dir, feature_columns, shipped_name=shipped_name)
    return score_models(features, [slot], key_columns)


def with_prediction_columns(
    scored: DataFrame,
    *,
    model: ResolvedModel,
    run_id: str,
    scored_at: datetime,
    partition_column: str,
    ds: date,
    key_columns: list[str],
    extra_columns: Sequence[str] = (),
) -> DataFrame:
    """The prediction-table layout: keys, score (label, probabilities), model name/version,
    run id, time, partition (``extra_columns``, e.g. challenger scores for staging, go just
    before the partition)."""
    from pyspark.sql import functions as F

    return scored.select(
        *key_columns,
        F.col(layout.SCORE),
        *(F.col(c) for c in layout.class_columns(model.task)),
        F.lit(model.name).alias(layout.MODEL_NAME),
        F.lit(model.version).cast("bigint").alias(layout.MODEL_VERSION),
        F.lit(run_id).alias(layout.RUN_ID),
        F.lit(scored_at).cast("timestamp").alias(layout.SCORED_AT),
        *(F.col(c) for c in extra_columns),
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
    bad_value_rows: int = 0  # rows the scoring pass refused (see ValueCheck)

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


def audit_expressions(
    key_columns: list[str], *, score_min: float, score_max: float, checked: bool
) -> list[Column]:
    """The audit's aggregates over the scored rows, except the distinct-key count (which
    needs its own pass): usable in ``agg`` or as observed metrics of the staging write."""
    from pyspark.sql import functions as F

    score = F.col(layout.SCORE)
    bad = score.isNull() | F.isnan(score) | (F.abs(score) == F.lit(math.inf))
    any_null_key = F.lit(False)
    for key in key_columns:
        any_null_key = any_null_key | F.col(key).isNull()
    return [
        F.count(F.col(layout.BAD_VALUES) if checked else F.lit(None)).alias("audit_bad_values"),
        F.count(F.lit(1)).alias("audit_rows"),
        F.sum(any_null_key.cast("long")).alias("audit_null_keys"),
        F.sum(bad.cast("long")).alias("audit_non_finite"),
        F.sum((~bad & ((score < score_min) | (score > score_max))).cast("long")).alias("audit_oor"),
        F.min(F.when(~bad, score)).alias("audit_smin"),
        F.max(F.when(~bad, score)).alias("audit_smax"),
        F.avg(F.when(~bad, score)).alias("audit_smean"),
    ]


def audit_from_metrics(
    metrics: Mapping[str, Any], *, expected_rows: int, distinct_keys: int
) -> AuditResult:
    """The audit result from the values of :func:`audit_expressions` and the distinct
    non-null key count."""
    rows = int(metrics["audit_rows"] or 0)
    null_keys = int(metrics["audit_null_keys"] or 0)
    return AuditResult(
        rows=rows,
        expected_rows=expected_rows,
        null_keys=null_keys,
        duplicate_keys=rows - null_keys - distinct_keys,
        non_finite_scores=int(metrics["audit_non_finite"] or 0),
        out_of_range_scores=int(metrics["audit_oor"] or 0),
        score_min=metrics["audit_smin"],
        score_max=metrics["audit_smax"],
        score_mean=metrics["audit_smean"],
        bad_value_rows=int(metrics["audit_bad_values"] or 0),
    )


@dataclass(frozen=True)
class WrittenStats:
    """What the observed metrics of the scoring write cannot give: distinct non-null keys
    (an exact distinct count needs all keys at once) and the score quantiles."""

    distinct_keys: int
    quantiles: list[float]


def written_stats(
    folder: str,
    key_columns: list[str],
    staged: Callable[[], DataFrame],
    *,
    distinct_keys: int | None = None,
) -> WrittenStats:
    """:class:`WrittenStats` of the scores written to ``folder`` (``staged()`` reads it);
    ``distinct_keys``, when the writing tasks proved it (they write local folders only), is
    not counted again.

    When they are local, the folder's Parquet files are read directly, with no Spark job (a
    distinct count is a shuffle): DuckDB counts the distinct keys and pyarrow takes the
    exact quantiles (the lower of the two middle values; pyarrow sorts one column in half
    the time of DuckDB's ``quantile_disc``), about 0.2 s for 2M rows against 1-2 s in the
    JVM. Other folders go through one Spark aggregation over the key and score columns."""
    from lakescore.quality.monitoring import QUANTILES

    if is_object_store(folder):
        return _object_store_written_stats(folder, key_columns, distinct_keys)
    if "://" not in folder.removeprefix("file://"):
        import glob

        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        files = sorted(glob.glob(f"{glob.escape(folder.removeprefix('file://'))}/*.parquet"))
        if not files:
            return WrittenStats(0, [])
        if distinct_keys is None:
            distinct_keys = _count_distinct_keys(files, key_columns)
        scores = pq.read_table(files, columns=[layout.SCORE], memory_map=True)[layout.SCORE]
        quantiles = []
        if len(scores) > scores.null_count:
            found = pc.quantile(scores, q=list(QUANTILES), interpolation="lower")
            quantiles = [float(q) for q in found.to_pylist()]
        return WrittenStats(distinct_keys, quantiles)

    from pyspark.sql import functions as F

    row = (
        staged()
        .agg(
            F.count_distinct(*[F.col(k) for k in key_columns]).alias("n"),
            F.percentile_approx(F.col(layout.SCORE), list(QUANTILES), 10_000).alias("q"),
        )
        .first()
    )
    assert row is not None
    return WrittenStats(int(row["n"] or 0), [float(q) for q in row["q"] or []])


def _object_store_written_stats(
    folder: str, key_columns: list[str], distinct_keys: int | None
) -> WrittenStats:
    """The same figures for a folder on object storage, read with pyarrow's S3 filesystem:
    a Spark aggregation there (a distinct count is a shuffle) took 60+ s on a loaded machine
    where this takes well under one."""
    import duckdb
    import pyarrow.compute as pc
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from lakescore.quality.monitoring import QUANTILES

    fs, path = filesystem_and_path(folder)
    found = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    files = sorted(f.path for f in found if f.path.endswith(".parquet"))
    if not files:
        return WrittenStats(0, [])
    wanted = [layout.SCORE] if distinct_keys is not None else [*key_columns, layout.SCORE]
    table = pq.read_table(files, columns=list(dict.fromkeys(wanted)), filesystem=fs)
    if distinct_keys is None:
        keys = ", ".join(f'"{k}"' for k in key_columns)
        not_null = " AND ".join(f'"{k}" IS NOT NULL' for k in key_columns)
        with duckdb.connect() as con:
            con.register("written", table)
            row = con.execute(
                f"SELECT count(DISTINCT ({keys})) FILTER (WHERE {not_null}) FROM written"
            ).fetchone()
        distinct_keys = int(row[0] or 0) if row else 0
    scores = table[layout.SCORE]
    quantiles = []
    if len(scores) > scores.null_count:
        quantiles = [
            float(q)
            for q in pc.quantile(scores, q=list(QUANTILES), interpolation="lower").to_pylist()
        ]
    return WrittenStats(distinct_keys, quantiles)


def _count_distinct_keys(files: list[str], key_columns: list[str]) -> int:
    import duckdb

    keys = ", ".join(f'"{k}"' for k in key_columns)
    not_null = " AND ".join(f'"{k}" IS NOT NULL' for k in key_columns)
    with duckdb.connect() as con:
        row = con.execute(
            f"SELECT count(DISTINCT ({keys})) FILTER (WHERE {not_null}) FROM read_parquet(?)",
            [files],
        ).fetchone()
    assert row is not None
    return int(row[0] or 0)


class _PartialSums:
    """What the task summaries share: the score bounds and histogram part of a merge, and a
    JSON round trip (one string column per task row back to the driver)."""

    bins: int
    score_min: float | None
    score_max: float | None
    bin_counts: list[int]

    def __post_init__(self) -> None:  # run by the dataclasses' __init__
        if not self.bin_counts:
            self.bin_counts = [0] * self.bins

    def _merge_bounds_and_bins(self, other: _PartialSums) -> None:
        if other.score_min is not None and other.score_max is not None:
            first = self.score_min is None or self.score_max is None
            self.score_min = other.score_min if first else min(self.score_min, other.score_min)
            self.score_max = other.score_max if first else max(self.score_max, other.score_max)
        self.bin_counts = [a + b for a, b in zip(self.bin_counts, other.bin_counts, strict=True)]

    def to_json(self) -> str:
        import json

        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Any:
        import json

        return cls(**json.loads(text))


@dataclass
class ScoreSummary(_PartialSums):
    """The audit's and the drift histogram's partial sums over scored rows, for scoring tasks
    that write their own files (:mod:`lakescore.ml.file_scoring`): each task sums its batches,
    the driver merges the tasks' summaries, and :meth:`metrics` gives the values that
    :func:`audit_expressions` and :func:`distribution_expressions` give in Spark.

    Mean and variance merge with Chan's pairwise update (no sum of squares to lose precision);
    a score is *valid* when it is not null, not NaN and not infinite."""

    low: float
    high: float
    bins: int
    rows: int = 0
    null_keys: int = 0
    bad_value_rows: int = 0
    bad_values: dict[str, int] = field(default_factory=dict)  # "column:kind" -> rows
    non_finite: int = 0
    out_of_range: int = 0
    valid: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    score_min: float | None = None
    score_max: float | None = None
    bin_counts: list[int] = field(default_factory=list)
    # Distinct non-null keys proven without counting them: each batch's single integer or
    # string key column strictly increases, and the merged parts' key ranges are disjoint
    # (partitions written in key order); False sends the audit to an exact distinct count.
    keys_in_order: bool = True
    key_low: Any = None
    key_high: Any = None
    # The audit's bounds when they differ from the histogram's range (None: low, high).
    audit_low: float | None = None
    audit_high: float | None = None
    # A multiclass model's classes and how many rows each was predicted for.
    classes: list[str] = field(default_factory=list)
    label_counts: list[int] = field(default_factory=list)

    def add(
        self,
        keys: Sequence[pa.Array],
        scores: pa.Array,
        flags: pa.Array | None = None,
        labels: pa.Array | None = None,
    ) -> None:
        """Add one batch: its key columns, scores, (optional) refused-value flags and (for a
        multiclass model) predicted labels."""
        import numpy as np

        rows = len(scores)
        any_null_key = np.zeros(rows, dtype=bool)
        for key in keys:
            if key.null_count:
                any_null_key |= key.is_null().to_numpy(zero_copy_only=False)
        values = scores.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        valid = np.isfinite(values)  # nulls arrive as NaN
        part = ScoreSummary(
            self.low,
            self.high,
            self.bins,
            rows=rows,
            audit_low=self.audit_low,
            audit_high=self.audit_high,
            classes=self.classes,
        )
        if self.classes and labels is not None:
            part.label_counts = _label_counts(labels, self.classes)
        part.null_keys = int(any_null_key.sum())
        part.keys_in_order, part.key_low, part.key_high = _increasing_key_range(keys)
        part.non_finite = rows - int(valid.sum())
        good = values[valid] if part.non_finite else values
        if flags is not None and flags.null_count < rows:
            for text in flags.drop_null().to_pylist():
                part.bad_value_rows += 1
                for label in text.split(","):
                    part.bad_values[label] = part.bad_values.get(label, 0) + 1
        if len(good):
            part.valid = len(good)
            part.mean = float(good.mean())
            part.m2 = float(((good - part.mean) ** 2).sum())
            part.score_min = float(good.min())
            part.score_max = float(good.max())
            low = self.low if self.audit_low is None else self.audit_low
            high = self.high if self.audit_high is None else self.audit_high
            part.out_of_range = int(((good < low) | (good > high)).sum())
            width = (self.high - self.low) / self.bins
            # Values outside the range count in the edge bins (a regression model's histogram
            # is over its training baseline's range, which new values may leave).
            bucket = np.clip(np.floor((good - self.low) / width), 0, self.bins - 1)
            counts = np.bincount(bucket.astype(np.int64), minlength=self.bins)
            part.bin_counts = [int(c) for c in counts[: self.bins]]
        self.merge(part)

    def merge(self, other: ScoreSummary) -> None:
        if (other.low, other.high, other.bins, other.classes) != (
            self.low,
            self.high,
            self.bins,
            self.classes,
        ):
            raise ValueError("summaries of different histogram ranges or classes do not merge")
        if other.label_counts:
            mine = self.label_counts or [0] * len(other.label_counts)
            self.label_counts = [a + b for a, b in zip(mine, other.label_counts, strict=True)]
        total = self.valid + other.valid
        if other.valid:
            delta = other.mean - self.mean
            self.mean += delta * other.valid / total
            self.m2 += other.m2 + delta * delta * self.valid * other.valid / total
        self.valid = total
        self.rows += other.rows
        self.null_keys += other.null_keys
        self.bad_value_rows += other.bad_value_rows
        for label, count in other.bad_values.items():
            self.bad_values[label] = self.bad_values.get(label, 0) + count
        self.non_finite += other.non_finite
        self.out_of_range += other.out_of_range
        self._merge_key_ranges(other)
        self._merge_bounds_and_bins(other)

    def _merge_key_ranges(self, other: ScoreSummary) -> None:
        self.keys_in_order = self.keys_in_order and other.keys_in_order
        if other.key_low is None:  # no keys: nothing to overlap
            return
        if self.key_low is None:
            self.key_low, self.key_high = other.key_low, other.key_high
            return
        disjoint = self.key_high < other.key_low or other.key_high < self.key_low
        self.keys_in_order = self.keys_in_order and disjoint
        self.key_low = min(self.key_low, other.key_low)
        self.key_high = max(self.key_high, other.key_high)

    def proven_distinct_keys(self) -> int | None:
        """The distinct non-null key count when the key order proves every key distinct
        (then it is every non-null key), else None."""
        return self.rows - self.null_keys if self.keys_in_order else None

    def metrics(self) -> dict[str, Any]:
        """The observed-metric names of :func:`audit_expressions` (``checked=True``) and
        :func:`distribution_expressions` (without ``dist_q``)."""
        mean = self.mean if self.valid else None
        std = math.sqrt(self.m2 / self.valid) if self.valid else None
        return {
            "audit_bad_values": self.bad_value_rows,
            "audit_rows": self.rows,
            "audit_null_keys": self.null_keys,
            "audit_non_finite": self.non_finite,
            "audit_oor": self.out_of_range,
            "audit_smin": self.score_min,
            "audit_smax": self.score_max,
            "audit_smean": mean,
            "dist_rows": self.valid,
            "dist_mean": mean,
            "dist_std": std,
            "dist_min": self.score_min,
            "dist_max": self.score_max,
            **{f"dist_b{i}": count for i, count in enumerate(self.bin_counts)},
            **{
                f"dist_l{i}": count
                for i, count in enumerate(self.label_counts or [0] * len(self.classes))
            },
        }


def _label_counts(labels: pa.Array, classes: Sequence[str]) -> list[int]:
    """How many of ``labels`` are each of ``classes`` (nulls: none)."""
    import pyarrow.compute as pc

    found = {
        row["values"]: int(row["counts"]) for row in pc.value_counts(labels.drop_null()).to_pylist()
    }
    return [found.get(c, 0) for c in classes]


def _increasing_key_range(keys: Sequence[pa.Array]) -> tuple[bool, Any, Any]:
    """(strictly increasing, first, last) of a batch's non-null keys; False when the batch
    has several key columns or a key type other than integers and strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(keys) != 1:
        return False, None, None
    key = keys[0]
    if not (pa.types.is_integer(key.type) or pa.types.is_string(key.type)):
        return False, None, None
    values = key.drop_null() if key.null_count else key
    n = len(values)
    if n == 0:
        return True, None, None
    if n > 1 and not pc.all(pc.greater(values.slice(1), values.slice(0, n - 1))).as_py():
        return False, None, None
    return True, values[0].as_py(), values[n - 1].as_py()


@dataclass
class ComparisonSummary(_PartialSums):
    """A challenger's scores against the champion's on the same rows, as partial sums that
    scoring tasks return and the driver merges: what :func:`lakescore.ml.shadow.compare` gets
    from one Spark aggregation over the staged scores. A challenger score is *good* when it
    is finite and within ``low``-``high``; the pairwise figures cover the good rows only.

    Means, variances and the co-moment merge with Chan's pairwise update."""

    low: float
    high: float
    bins: int
    threshold: float
    rows: int = 0
    scored: int = 0  # non-null challenger scores
    bad: int = 0  # non-null, but not finite or outside the bounds
    good: int = 0
    mean_champion: float = 0.0
    mean: float = 0.0
    m2_champion: float = 0.0
    m2: float = 0.0
    co_moment: float = 0.0
    flips: int = 0
    score_min: float | None = None
    score_max: float | None = None
    bin_counts: list[int] = field(default_factory=list)
    # The champion's scores of the same good rows on the same bins: what the challenger's
    # histogram is compared with (the champion's own drift histogram may have other bins:
    # a multiclass model's label shares, a regression model's baseline range).
    champion_bin_counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.champion_bin_counts:
            self.champion_bin_counts = [0] * self.bins

    def add(self, champion: pa.Array, challenger: pa.Array) -> None:
        import numpy as np

        part = ComparisonSummary(self.low, self.high, self.bins, self.threshold)
        part.rows = len(challenger)
        part.scored = len(challenger) - challenger.null_count
        c = champion.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        x = challenger.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        good = np.isfinite(x) & (x >= self.low) & (x <= self.high) & np.isfinite(c)
        part.good = int(good.sum())
        part.bad = part.scored - int((np.isfinite(x) & (x >= self.low) & (x <= self.high)).sum())
        if part.good:
            c, x = c[good], x[good]
            part.mean_champion, part.mean = float(c.mean()), float(x.mean())
            dc, dx = c - part.mean_champion, x - part.mean
            part.m2_champion = float((dc * dc).sum())
            part.m2 = float((dx * dx).sum())
            part.co_moment = float((dc * dx).sum())
            part.flips = int(((c >= self.threshold) != (x >= self.threshold)).sum())
            part.score_min, part.score_max = float(x.min()), float(x.max())
            width = (self.high - self.low) / self.bins
            for values, name in ((x, "bin_counts"), (c, "champion_bin_counts")):
                bucket = np.clip(np.floor((values - self.low) / width), 0, self.bins - 1)
                counts = np.bincount(bucket.astype(np.int64), minlength=self.bins)
                setattr(part, name, [int(n) for n in counts])
        self.merge(part)

    def merge(self, other: ComparisonSummary) -> None:
        if (other.low, other.high, other.bins, other.threshold) != (
            self.low,
            self.high,
            self.bins,
            self.threshold,
        ):
            raise ValueError("comparisons of different bounds or thresholds do not merge")
        total = self.good + other.good
        if other.good:
            share = other.good / total
            d_champion = other.mean_champion - self.mean_champion
            d_challenger = other.mean - self.mean
            weight = self.good * other.good / total
            self.m2_champion += other.m2_champion + d_champion * d_champion * weight
            self.m2 += other.m2 + d_challenger * d_challenger * weight
            self.co_moment += other.co_moment + d_champion * d_challenger * weight
            self.mean_champion += d_champion * share
            self.mean += d_challenger * share
        self.good = total
        self.rows += other.rows
        self.scored += other.scored
        self.bad += other.bad
        self.flips += other.flips
        self._merge_bounds_and_bins(other)
        mine, theirs = self.champion_bin_counts, other.champion_bin_counts
        self.champion_bin_counts = [a + b for a, b in zip(mine, theirs, strict=True)]

    @property
    def correlation(self) -> float | None:
        """Pearson's r of champion and challenger over the good rows (None when undefined)."""
        if not self.good or self.m2_champion <= 0 or self.m2 <= 0:
            return None
        return self.co_moment / math.sqrt(self.m2_champion * self.m2)

    @property
    def mean_difference(self) -> float | None:
        return self.mean - self.mean_champion if self.good else None

    @property
    def flip_share(self) -> float | None:
        return self.flips / self.good if self.good else None

    @property
    def std(self) -> float | None:
        return math.sqrt(self.m2 / self.good) if self.good else None


def bad_value_counts(staged: DataFrame) -> dict[str, int]:
    """``{"column:kind": rows}`` over the staged rows the scoring pass refused (failure path
    only: one small aggregation over those rows)."""
    from pyspark.sql import functions as F

    flags = F.col(layout.BAD_VALUES)
    rows = (
        staged.where(flags.isNotNull())
        .select(F.explode(F.split(flags, ",")).alias("label"))
        .groupBy("label")
        .count()
        .collect()
    )
    return {row["label"]: int(row["count"]) for row in rows}


def require_clean_audit(result: AuditResult, *, job: str, ds: str) -> None:
    if result.problems:
        raise AuditFailure(
            "audit failed, nothing published: " + "; ".join(result.problems), job=job, ds=ds
        )
