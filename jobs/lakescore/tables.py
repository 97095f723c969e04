"""The table layer: every read and write of a Delta table goes through here.

Two engines, on purpose:

* **delta-spark** (Spark side) does every write: one atomic ``replaceWhere`` commit per
  published partition, with commit metadata (``userMetadata``) and an idempotent transaction
  id (``txnAppId``/``txnVersion``), appends, and pinned-version reads.
* **delta-rs** (the ``deltalake`` package) reads without a JVM: Airflow-side checks (does the
  partition exist, how many rows, which version), analyst SQL, the notebook API, and tests
  that check what Spark wrote without trusting Spark.

Partition predicates are built from a parsed :class:`datetime.date` and a validated column
identifier, never by pasting user text into SQL.

pyspark and deltalake are imported inside the functions that need them, so the Airflow side can
import this module at DAG-parse time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lakescore.config import IDENTIFIER_PATTERN
from lakescore.errors import BadInputError, PublishConflict, ScoringFailure

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_FUTURE_DAYS = 366


# --------------------------------------------------------------------------- partitions


def parse_partition_date(
    value: str | date, *, job: str | None = None, max_future_days: int = MAX_FUTURE_DAYS
) -> date:
    """A partition value as a real date: ``YYYY-MM-DD``, a real calendar day, at most
    ``max_future_days`` ahead of today (a job's ``schedule.max_future_days``).

    Everything that names a partition (CLI, DAG params, conf) goes through this, so what
    reaches a predicate is a ``date`` object, never user text.
    """
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        parsed = value
    else:
        text = str(value)
        if not _ISO_DATE.fullmatch(text):
            raise BadInputError(
                f"partition date {text!r} is not of the form YYYY-MM-DD", job=job, key="ds"
            )
        try:
            parsed = date.fromisoformat(text)
        except ValueError as exc:
            raise BadInputError(
                f"partition date {text!r} is not a calendar day ({exc})", job=job, key="ds"
            ) from None
    if parsed > date.today() + timedelta(days=max_future_days):
        raise BadInputError(
            f"partition date {parsed} is more than {max_future_days} days in the future "
            "(schedule.max_future_days)",
            job=job,
            ds=parsed.isoformat(),
            key="ds",
        )
    return parsed


def partition_predicate(column: str, ds: date) -> str:
    """``replaceWhere`` predicate for one date partition, from typed parts only."""
    if not IDENTIFIER_PATTERN.fullmatch(column):
        raise BadInputError(f"{column!r} is not a plain column name", column=column)
    if not isinstance(ds, date) or isinstance(ds, datetime):
        raise TypeError("ds must be a datetime.date (not a datetime)")
    return f"`{column}` = DATE '{ds.isoformat()}'"


# --------------------------------------------------------------------------- JVM-free reads


@dataclass(frozen=True)
class PartitionInfo:
    """What the Delta log says about one partition at one table version."""

    table: str
    version: int
    files: int
    rows: int | None  # None when a writer left no stats
    size_bytes: int


def _delta_table(uri: str, version: int | None = None) -> Any:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(uri, version=version) if version is not None else DeltaTable(uri)
    except TableNotFoundError:
        raise BadInputError("no Delta table here (no _delta_log)", file=uri) from None
    except OSError as exc:
        raise BadInputError(f"cannot read the Delta table: {exc}", file=uri) from None
    except Exception as exc:  # delta-rs raises generic errors for unreadable logs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = (
            "its Delta protocol needs a table feature lakescore's readers do not support"
            if "Unsupported" in first or "unsupported" in first
            else "cannot read the Delta table (log unreadable)"
        )
        raise BadInputError(f"{what}: {first}", file=uri) from None


def table_exists(uri: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(uri)


def warm_delta_snapshots(spark: SparkSession, uris: list[str]) -> None:
    """Load the Delta snapshot of each existing table in the JVM (delta-spark caches it per
    path): the first publish of a new session then skips the class loading and log replay.
    A start-up optimisation only; a table that cannot be read is left to the real step."""
    for uri in uris:
        if table_exists(uri):
            spark.read.format("delta").load(uri).schema  # noqa: B018 - resolves the snapshot


def table_version(uri: str) -> int | None:
    """Latest version, or None if there is no table yet."""
    return _delta_table(uri).version() if table_exists(uri) else None


def partition_info(
    uri: str, partition_column: str, ds: date, version: int | None = None
) -> PartitionInfo:
    """Files and rows of partition ``ds`` from the Delta log, without reading data files."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _delta_table(uri, version)
    actions = pa.table(table.get_add_actions(flatten=True))
    part_field = f"partition.{partition_column}"
    if part_field not in actions.column_names:
        if table.metadata().partition_columns != [partition_column]:
            raise BadInputError(
                f"table is not partitioned by {partition_column!r} "
                f"(partition columns: {table.metadata().partition_columns})",
                file=uri,
                column=partition_column,
            )
        return PartitionInfo(uri, table.version(), 0, 0, 0)
    values = actions[part_field]
    if pa.types.is_date(values.type):
        mask = pc.equal(values, pa.scalar(ds, type=values.type))
    else:
        mask = pc.equal(values.cast(pa.string()), ds.isoformat())
    mine = actions.filter(mask)
    records = mine["num_records"] if "num_records" in mine.column_names else None
    rows = None
    if records is not None and records.null_count == 0:
        rows = int(pc.sum(records).as_py() or 0)
    return PartitionInfo(
        table=uri,
        version=table.version(),
        files=mine.num_rows,
        rows=rows,
        size_bytes=int(pc.sum(mine["size_bytes"]).as_py() or 0),
    )


def previous_partition_rows(
    uri: str, partition_column: str, ds: date, version: int | None = None
) -> tuple[date, int] | None:
    """The latest partition before ``ds`` and its row count (Delta log stats), if any."""
    import pyarrow as pa
    import pyarrow.compute as pc

    actions = pa.table(_delta_table(uri, version).get_add_actions(flatten=True))
    field = f"partition.{partition_column}"
    if field not in actions.column_names or actions.num_rows == 0:
        return None
    values = actions[field]
    if not pa.types.is_date(values.type):
        values = pc.cast(values.cast(pa.string()), pa.date32())
    earlier = pc.less(values, pa.scalar(ds, type=pa.date32()))
    if not pc.any(earlier).as_py():
        return None
    latest = pc.max(pc.filter(values, earlier)).as_py()
    mine = actions.filter(pc.equal(values, pa.scalar(latest, type=pa.date32())))
    records = mine["num_records"]
    if records.null_count:
        return None
    return latest, int(pc.sum(records).as_py() or 0)


def read_table(
    uri: str,
    version: int | None = None,
    partition_column: str | None = None,
    start: date | None = None,
    end: date | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Read a table (optionally at a version, optionally a date range) with delta-rs."""
    import pyarrow.dataset as ds_mod

    table = _delta_table(uri, version)
    dataset = table.to_pyarrow_dataset()
    expression = None
    if partition_column and (start or end):
        field = ds_mod.field(partition_column)
        if start:
            expression = field >= start
        if end:
            expression = (field <= end) if expression is None else (expression & (field <= end))
    return dataset.to_table(filter=expression, columns=columns)


def table_columns(uri: str, version: int | None = None) -> dict[str, str]:
    """Column name -> Arrow type name of the table (at ``version``), from the Delta log."""
    return {f.name: str(f.type) for f in table_schema(uri, version)}


def table_schema(uri: str, version: int | None = None) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(_delta_table(uri, version).schema().to_arrow())


def select_rows(uri: str, *, sort_by: str, **equals: Any) -> list[dict[str, Any]]:
    """Rows whose columns equal ``equals`` (filter pushed down by delta-rs), sorted ascending
    by ``sort_by``; empty if the table does not exist."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds_mod

    if not table_exists(uri):
        return []
    expression = None
    for column, value in equals.items():
        term = ds_mod.field(column) == value
        expression = term if expression is None else expression & term
    rows = read_table(uri)
    if expression is not None:
        rows = rows.filter(expression)
    rows = rows.take(pc.sort_indices(rows, sort_keys=[(sort_by, "ascending")]))
    return rows.to_pylist()


def history(uri: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Commits, newest first, with ``userMetadata`` parsed from JSON when it is ours."""
    entries = _delta_table(uri).history(limit)
    for entry in entries:
        raw = entry.get("userMetadata")
        try:
            entry["lakescore"] = json.loads(raw) if raw else None
        except (TypeError, ValueError):
            entry["lakescore"] = None
    return entries


def transaction_version(uri: str, app_id: str) -> int | None:
    """Last ``txnVersion`` committed under ``app_id`` (None if never, or no table)."""
    if not table_exists(uri):
        return None
    return _delta_table(uri).transaction_version(app_id)


# --------------------------------------------------------------------------- Spark side


def read_partition(
    spark: SparkSession, uri: str, partition_column: str, ds: date, version: int
) -> DataFrame:
    """Partition ``ds`` of the table as it was at ``version`` (files listed by the log)."""
    from pyspark.sql import functions as F

    reader = spark.read.format("delta").option("versionAsOf", version)
    return reader.load(uri).where(F.col(partition_column) == F.lit(ds))


def ensure_table(
    spark: SparkSession,
    uri: str,
    schema: Any,
    partition_column: str | None,
    description: str,
) -> None:
    """Create the table with its declared schema if it does not exist yet."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(uri).addColumns(schema)
    if partition_column:
        builder = builder.partitionedBy(partition_column)
    builder.comment(description).execute()


@dataclass(frozen=True)
class CommitInfo:
    """What a publish records in the Delta commit (readable with DESCRIBE HISTORY)."""

    run_id: str
    job: str
    ds: date
    model_name: str
    model_version: int
    input_table: str
    input_version: int
    rows: int
    # more keys for the commit metadata (e.g. a rollback's action, reason, restored version)
    extra: dict[str, Any] | None = None

    def user_metadata(self) -> str:
        return json.dumps(
            {
                **(self.extra or {}),
                "lakescore_run_id": self.run_id,
                "job": self.job,
                "ds": self.ds.isoformat(),
                "model_name": self.model_name,
                "model_version": self.model_version,
                "input_table": self.input_table,
                "input_version": self.input_version,
                "rows": self.rows,
            },
            sort_keys=True,
        )


def publish_app_id(job: str, ds: date) -> str:
    """The idempotency key of a (job, partition): Delta keeps the last txnVersion per key."""
    return f"lakescore.{job}.{ds.isoformat()}"


def replace_partition(
    df: DataFrame,
    uri: str,
    partition_column: str,
    ds: date,
    commit: CommitInfo,
    txn_version: int,
    app_id: str | None = None,
) -> int:
    """Replace partition ``ds`` with ``df`` in one atomic commit; return the new table version.

    ``txn_version`` grows with each run of the same (job, ds) (the run's start time in ms): a
    retry of the same run is a no-op, and a run older than the last publish is refused instead
    of overwriting newer scores. ``app_id`` defaults to :func:`publish_app_id`.
    """
    app_id = app_id or publish_app_id(commit.job, ds)
    recorded = transaction_version(uri, app_id)
    if recorded is not None and recorded >= txn_version:
        if recorded == txn_version:
            existing = find_commit(uri, commit.run_id)
            if existing is not None:
                return existing
        raise PublishConflict(
            f"a newer run already published this partition (txnVersion {recorded} > "
            f"{txn_version}); rerun to replace it",
            job=commit.job,
            ds=ds.isoformat(),
        )
    try:
        (
            df.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", partition_predicate(partition_column, ds))
            .option("txnAppId", app_id)
            .option("txnVersion", str(txn_version))
            .option("userMetadata", commit.user_metadata())
            .save(uri)
        )
    except Exception as exc:
        conflict = delta_conflict_name(type(exc).__name__ + " " + str(exc)[:2000])
        if conflict:
            raise PublishConflict(
                f"another run committed to this partition at the same time ({conflict}); "
                "nothing of this run was published, retry",
                job=commit.job,
                ds=ds.isoformat(),
            ) from exc
        raise
    version = find_commit(uri, commit.run_id)
    if version is None:
        raise ScoringFailure(
            "publish finished but its commit is not in the table history",
            job=commit.job,
            ds=ds.isoformat(),
            file=uri,
        )
    return version


_DELTA_CONFLICT = re.compile(
    r"\b(\w*Concurrent\w*Exception|\w*ProtocolChangedException|\w*MetadataChangedException)\b"
)


def delta_conflict_name(error_text: str) -> str | None:
    """The Delta conflict exception named in an error (e.g. ``ConcurrentAppendException``
    inside a Py4JJavaError), or None when the error is not a write conflict."""
    match = _DELTA_CONFLICT.search(error_text)
    return match.group(1) if match else None


def find_commit(uri: str, run_id: str, search_last: int = 50) -> int | None:
    """Version of the commit that carries ``run_id`` in its metadata, if any (recent first)."""
    for entry in history(uri, search_last):
        meta = entry.get("lakescore")
        if isinstance(meta, dict) and meta.get("lakescore_run_id") == run_id:
            return int(entry["version"])
    return None


def append(df: DataFrame, uri: str, user_metadata: str | None = None) -> None:
    """Blind append (lineage): never conflicts with concurrent appends."""
    writer = df.write.format("delta").mode("append")
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    writer.save(uri)
