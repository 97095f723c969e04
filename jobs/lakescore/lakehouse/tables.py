"""The table layer: every read and write of a Delta table goes through here.

Two engines, on purpose:

* **delta-spark** (Spark side) creates tables, reads pinned versions, appends, and writes
  the data files of a publish. The publish itself is one atomic overwrite of the partition,
  with commit metadata (``userMetadata``) and an idempotent transaction id (app id and
  txnVersion): committed by delta-rs over the files Spark wrote into the table's folder
  (local tables with a plain protocol), or by delta-spark's ``replaceWhere`` (the others).
* **delta-rs** (the ``deltalake`` package) reads without a JVM: Airflow-side checks (does the
  partition exist, how many rows, which version), analyst SQL, the notebook API, and tests
  that check what Spark wrote without trusting Spark. It also makes the publish commits above.

Partition predicates are built from a parsed :class:`datetime.date` and a validated column
identifier, never by pasting user text into SQL.

Object storage (``s3://``): delta-rs gets its ``storage_options`` and Spark its ``s3a://`` path
from :mod:`lakescore.storage`; every commit to a table on S3 is a delta-rs commit (a conditional
PUT of the log entry), Spark only writes data files there (see :mod:`lakescore.storage`).

pyspark and deltalake are imported inside the functions that need them, so the Airflow side can
import this module at DAG-parse time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lakescore import storage
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

    options = storage.delta_options(uri)
    try:
        return DeltaTable(uri, version=version, storage_options=options)
    except TableNotFoundError:
        raise BadInputError("no Delta table here (no _delta_log)", file=uri) from None
    except Exception as exc:
        raise _unreadable_table(uri, exc, on_object_store=options is not None) from None


def _unreadable_table(uri: str, exc: Exception, *, on_object_store: bool) -> BadInputError:
    """One line for a table delta-rs cannot open: the store's failure, an unsupported
    protocol, or an unreadable log."""
    if on_object_store and _is_store_failure(exc):
        return object_store_error(uri, exc)
    if isinstance(exc, OSError):
        return BadInputError(f"cannot read the Delta table: {exc}", file=uri)
    # delta-rs raises generic errors for unreadable logs
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    what = (
        "its Delta protocol needs a table feature lakescore's readers do not support"
        if "Unsupported" in first or "unsupported" in first
        else "cannot read the Delta table (log unreadable)"
    )
    return BadInputError(f"{what}: {first}", file=uri)


def table_exists(uri: str) -> bool:
    from deltalake import DeltaTable

    options = storage.delta_options(uri)
    if options is None:
        return DeltaTable.is_deltatable(uri)
    try:
        return DeltaTable.is_deltatable(uri, storage_options=options)
    except Exception as exc:  # unreachable endpoint, missing bucket, refused credentials
        raise object_store_error(uri, exc) from None


def _is_store_failure(exc: BaseException) -> bool:
    """An error of the object store itself (not of the table's log)."""
    text = str(exc).lower()
    return any(w in text for w in ("s3 error", "object store", "privileges", "credential"))


_REFUSED = (
    "invalidaccesskeyid",
    "signaturedoesnotmatch",
    "accessdenied",
    "lacked the necessary privileges",
    "403",
)


def object_store_error(uri: str, exc: BaseException) -> BadInputError:
    """One line naming the URI and what the store said (never a credential): a missing bucket,
    refused credentials or an unreachable endpoint are not fixed by a retry."""
    text = str(exc)
    lowered = text.lower()
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered:
        why = "the bucket does not exist"
    elif any(w in lowered for w in _REFUSED):
        why = "the store refused the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
    elif any(w in lowered for w in ("connect", "dns", "timed out", "timeout", "unreachable")):
        endpoint = storage.active().s3.endpoint or "the AWS endpoint"
        why = f"cannot reach the object store at {endpoint}"
    else:
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        why = f"object store error: {first[:300]}"
    return BadInputError(why, file=uri)


def warm_delta_snapshots(spark: SparkSession, uris: list[str]) -> None:
    """Load the Delta snapshot of each existing table in the JVM (delta-spark caches it per
    path): the first publish of a new session then skips the class loading and log replay.
    A start-up optimisation only; a table that cannot be read is left to the real step."""
    for uri in uris:
        if table_exists(uri):
            spark.read.format("delta").load(storage.spark_path(uri)).schema  # noqa: B018


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


def partition_null_counts(
    uri: str, partition_column: str, ds: date, version: int | None, columns: list[str]
) -> dict[str, int | None]:
    """Missing values per column in partition ``ds``, from the Delta log's file statistics
    (no data file read); None for a column some file has no statistics for."""
    import pyarrow as pa
    import pyarrow.compute as pc

    actions = pa.table(_delta_table(uri, version).get_add_actions(flatten=True))
    part_field = f"partition.{partition_column}"
    if part_field not in actions.column_names:
        return dict.fromkeys(columns)
    values = actions[part_field]
    if pa.types.is_date(values.type):
        mine = actions.filter(pc.equal(values, pa.scalar(ds, type=values.type)))
    else:
        mine = actions.filter(pc.equal(values.cast(pa.string()), ds.isoformat()))
    out: dict[str, int | None] = {}
    for column in columns:
        field = f"null_count.{column}"
        known = field in mine.column_names and mine[field].null_count == 0
        out[column] = int(pc.sum(mine[field]).as_py() or 0) if known else None
    return out


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


def table_properties(uri: str) -> dict[str, str]:
    """The table's properties (its Delta metadata ``configuration``), e.g. ``lakescore.task``."""
    return dict(_delta_table(uri).metadata().configuration or {})


def select_rows(
    uri: str, *, sort_by: str, columns: list[str] | None = None, **equals: Any
) -> list[dict[str, Any]]:
    """Rows whose columns equal ``equals`` (the filter and the ``columns`` read are pushed
    down into the scan), sorted ascending by ``sort_by``; empty if the table does not exist."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds_mod

    if not table_exists(uri):
        return []
    expression = None
    for column, value in equals.items():
        term = ds_mod.field(column) == value
        expression = term if expression is None else expression & term
    wanted = None if columns is None else list(dict.fromkeys([*columns, sort_by]))
    rows = _delta_table(uri).to_pyarrow_dataset().to_table(filter=expression, columns=wanted)
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
    return reader.load(storage.spark_path(uri)).where(F.col(partition_column) == F.lit(ds))


def ensure_table(
    spark: SparkSession,
    uri: str,
    schema: Any,
    partition_column: str | None,
    description: str,
    properties: dict[str, str] | None = None,
) -> None:
    """Create the table with its declared schema (and table ``properties``) if it does not
    exist yet (on object storage with delta-rs: its first commit is a conditional PUT like
    every other, see module doc)."""
    if storage.is_object_store(uri):
        _create_with_delta_rs(uri, schema, partition_column, description, properties)
        return
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(uri).addColumns(schema)
    if partition_column:
        builder = builder.partitionedBy(partition_column)
    for key, value in (properties or {}).items():
        builder = builder.property(key, value)
    builder.comment(description).execute()


def _create_with_delta_rs(
    uri: str,
    schema: Any,
    partition_column: str | None,
    description: str,
    properties: dict[str, str] | None = None,
) -> None:
    import pyarrow as pa
    from deltalake import DeltaTable

    if isinstance(schema, pa.Schema):
        arrow_schema = schema
    else:  # a Spark StructType
        from pyspark.sql.pandas.types import to_arrow_schema

        arrow_schema = to_arrow_schema(schema, timezone="UTC")
    try:
        DeltaTable.create(
            uri,
            schema=arrow_schema,
            mode="ignore",
            partition_by=[partition_column] if partition_column else None,
            description=description,
            configuration=dict(properties) if properties else None,
            storage_options=storage.delta_options(uri),
            raise_if_key_not_exists=False,  # lakescore's own keys are not Delta's
        )
    except Exception as exc:
        if table_exists(uri):  # another writer created it first: same layout, use theirs
            return
        raise object_store_error(uri, exc) from exc


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

    def user_metadata(self, replaced: str | None = None) -> str:
        """The commit's userMetadata JSON; ``replaced`` is the partition predicate a publish
        overwrote (DESCRIBE HISTORY shows it here whichever engine committed)."""
        return json.dumps(
            {
                **(self.extra or {}),
                **({"replaced": replaced} if replaced else {}),
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

    On a local table with a plain protocol, Spark writes the rows as Parquet files into the
    table's folder and delta-rs commits them as one overwrite of the partition
    (:func:`commit_partition_files`): no Delta write job in the JVM, which costs seconds of
    fixed time per publish. Other tables go through delta-spark's ``replaceWhere``.
    """
    app_id = app_id or publish_app_id(commit.job, ds)
    existing = _already_published(uri, app_id, txn_version, commit, ds)
    if existing is not None:
        return existing
    if not commits_with_delta_rs(uri):
        if storage.is_object_store(uri):
            raise BadInputError(
                "table on object storage whose protocol delta-rs cannot commit to (writer "
                "features); lakescore commits to S3 tables only with delta-rs conditional PUTs "
                "(docs/object-storage.md), nothing published",
                job=commit.job,
                ds=ds.isoformat(),
                file=uri,
            )
        return _replace_with_spark(df, uri, partition_column, ds, commit, txn_version, app_id)
    folder = run_folder(uri, partition_column, ds, commit.run_id)
    # A folder left by an earlier attempt of this run is not in the log (the txn check above
    # proves this run never committed): it is ours to replace.
    remove_folder(folder)
    try:
        df.drop(partition_column).write.mode("errorifexists").parquet(storage.spark_path(folder))
        return commit_partition_files(
            uri, partition_column, ds, folder, commit, txn_version, app_id=app_id
        )
    except BaseException:
        if find_commit(uri, commit.run_id) is None:
            remove_folder(folder)
        raise


def remove_folder(folder: str) -> None:
    """Delete a folder of data files (a local directory or an S3 prefix); gone already is fine."""
    if not storage.is_object_store(folder):
        import shutil

        shutil.rmtree(folder.removeprefix("file://"), ignore_errors=True)
        return
    import contextlib

    fs, path = storage.filesystem_and_path(folder)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_dir(path)


def folder_exists(folder: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = storage.filesystem_and_path(folder)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def run_folder(uri: str, partition_column: str, ds: date, run_id: str) -> str:
    """Where a run's files for partition ``ds`` are written, inside the table's folder (so
    the log refers to them by relative path and VACUUM reclaims them once replaced)."""
    root = uri.removeprefix("file://").rstrip("/")
    return f"{root}/{partition_column}={ds.isoformat()}/lakescore-{run_id}"


def remove_uncommitted_run_folder(
    uri: str, partition_column: str, ds: date, run_id: str
) -> str | None:
    """Delete a run's folder of data files inside the table when no version of the table
    ever committed them (the run failed or died before its commit); return its path."""
    folder = run_folder(uri, partition_column, ds, run_id)
    if not folder_exists(folder):
        return None
    if table_exists(uri) and find_commit(uri, run_id, search_last=None) is not None:
        return None  # committed: time travel may still read these files
    remove_folder(folder)
    return folder


def commits_with_delta_rs(uri: str) -> bool:
    """A local or object-store table whose protocol needs nothing delta-rs's commit path does
    not write."""
    local = "://" not in uri.removeprefix("file://")
    if not (local or storage.is_object_store(uri)) or not table_exists(uri):
        return False
    protocol = _delta_table(uri).protocol()
    return protocol.min_writer_version <= 2 and not protocol.writer_features


def _already_published(
    uri: str, app_id: str, txn_version: int, commit: CommitInfo, ds: date
) -> int | None:
    """The version this very run already committed (a retry), None if it may publish; raises
    when a newer run has published the partition."""
    recorded = transaction_version(uri, app_id)
    if recorded is None or recorded < txn_version:
        return None
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


@dataclass(frozen=True)
class DataFile:
    """One Parquet file to add to a table: path relative to the table root, and its stats."""

    path: str
    size: int
    modified_ms: int
    stats: dict[str, Any]


def staged_data_files(folder: str, table_root: str, schema: pa.Schema) -> list[DataFile]:
    """The Parquet files Spark wrote into ``folder``, checked against the table's ``schema``
    (every column present, with a compatible type; no null in a non-nullable column), with the
    Delta stats other readers use to skip files. Spark's side files are removed. ``folder``
    and ``table_root`` are local paths or object-store URIs (read through pyarrow's fs)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, fs_folder = storage.filesystem_and_path(folder)
    try:
        listing = fs.get_file_info(pafs.FileSelector(fs_folder))
    except FileNotFoundError:
        listing = []
    files = []
    for entry in sorted(listing, key=lambda e: e.base_name):
        name = entry.base_name
        path = f"{folder.rstrip('/')}/{name}"
        if name.startswith(("_", ".")):
            # _SUCCESS and .crc files: not data, never in the log
            if entry.type == pafs.FileType.Directory:
                fs.delete_dir(entry.path)
            else:
                fs.delete_file(entry.path)
            continue
        if not name.endswith(".parquet") or entry.type != pafs.FileType.File:
            raise ScoringFailure("unexpected file among the run's data files", file=path)
        with fs.open_input_file(entry.path) as handle:
            metadata = pq.ParquetFile(handle).metadata
        _check_file_schema(metadata.schema.to_arrow_schema(), schema, path)
        stats = parquet_stats(metadata)
        for field in schema:
            if not field.nullable and stats["nullCount"].get(field.name, 0):
                raise ScoringFailure(
                    f"{stats['nullCount'][field.name]} null values in a non-nullable column; "
                    "nothing published",
                    file=path,
                    column=field.name,
                )
        modified = entry.mtime.timestamp() if entry.mtime is not None else 0.0
        files.append(
            DataFile(
                path=_relative_to(path, table_root),
                size=int(entry.size),
                modified_ms=int(modified * 1000),
                stats=stats,
            )
        )
    return files


def _relative_to(path: str, root: str) -> str:
    """``root/a/b`` -> ``a/b`` for local paths and URIs alike (the log's relative path)."""
    import os

    if not storage.is_object_store(root):
        return os.path.relpath(path, root)
    base = storage.normalise(root).rstrip("/") + "/"
    full = storage.normalise(path)
    if not full.startswith(base):
        raise ScoringFailure(f"data file is not inside the table {root}", file=path)
    return full[len(base) :]


def _type_kind(data_type: pa.DataType) -> str:
    """A type's shape for comparing a data file with the table: nullability ignored at
    every level, string/binary widths and timestamp units and zones alike."""
    import pyarrow as pa

    if pa.types.is_timestamp(data_type):
        return "timestamp"  # Spark writes INT96 (read as ns, no zone); Delta's type is us UTC
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "binary"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"list<{_type_kind(data_type.value_type)}>"
    if pa.types.is_map(data_type):
        return f"map<{_type_kind(data_type.key_type)},{_type_kind(data_type.item_type)}>"
    if pa.types.is_struct(data_type):
        fields = (data_type.field(i) for i in range(data_type.num_fields))
        return "struct<" + ",".join(f"{f.name}:{_type_kind(f.type)}" for f in fields) + ">"
    return str(data_type)


def _check_file_schema(found: pa.Schema, table: pa.Schema, path: str) -> None:
    for field in table:
        if field.name not in found.names:
            # the partition column lives in the log's partitionValues, not in the files
            continue
        have = found.field(field.name).type
        if _type_kind(have) != _type_kind(field.type):
            raise ScoringFailure(
                f"data file column type {have} does not match the table's {field.type}; "
                "nothing published",
                file=path,
                column=field.name,
            )
    extra = [n for n in found.names if n not in table.names]
    if extra:
        raise ScoringFailure(f"data file has columns the table does not: {extra}", file=path)


def parquet_stats(metadata: Any) -> dict[str, Any]:
    """Delta file statistics (numRecords, nullCount, minValues, maxValues) from a Parquet
    footer. Min/max only where the footer has them for every row group (Spark's INT96
    timestamps have none) and for plain scalar types. Timestamps are written as Delta writes
    them, in milliseconds: the minimum truncated, the maximum rounded up (skipping stays
    correct)."""
    import pyarrow as pa

    schema = metadata.schema.to_arrow_schema()
    nulls: dict[str, int] = {}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for index, field in enumerate(schema):
        null_count = 0
        low = high = None
        has_bounds = field.type.num_fields == 0 and (
            not pa.types.is_timestamp(field.type) or field.type.tz is not None
        )
        for group in range(metadata.num_row_groups):
            column = metadata.row_group(group).column(index)
            stats = column.statistics
            if stats is None or not stats.has_null_count:
                null_count = None
                has_bounds = False
                break
            null_count += stats.null_count
            if stats.has_min_max:
                low = stats.min if low is None else min(low, stats.min)
                high = stats.max if high is None else max(high, stats.max)
            elif stats.null_count < column.num_values:
                has_bounds = False
        if null_count is not None:
            nulls[field.name] = null_count
        if has_bounds and low is not None:
            if isinstance(high, datetime) and high.microsecond % 1000:
                high += timedelta(microseconds=1000 - high.microsecond % 1000)
            lows[field.name], highs[field.name] = _json_value(low), _json_value(high)
    return {
        "numRecords": metadata.num_rows,
        "minValues": lows,
        "maxValues": highs,
        "nullCount": nulls,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


_COMMIT_ATTEMPTS = 5


def commit_partition_files(
    uri: str,
    partition_column: str,
    ds: date,
    folder: str,
    commit: CommitInfo,
    txn_version: int,
    app_id: str | None = None,
    expected_rows: int | None = None,
) -> int:
    """Commit the Parquet files in ``folder`` (inside the table) as the whole of partition
    ``ds``: one delta-rs overwrite of that partition, carrying the run's app transaction and
    commit metadata. Another commit landing first makes delta-rs refuse ours (no automatic
    rebase); the transaction check is then redone on the new snapshot and the commit retried,
    so the partition always holds exactly one run's files and an older run never replaces a
    newer one."""
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import AddAction, CommitProperties, Transaction

    app_id = app_id or publish_app_id(commit.job, ds)
    table = _delta_table(uri)
    schema = table_schema(uri)
    root = table.table_uri.removeprefix("file://").rstrip("/")
    files = staged_data_files(folder, uri if storage.is_object_store(uri) else root, schema)
    rows = sum(int(f.stats["numRecords"]) for f in files)
    if expected_rows is not None and rows != expected_rows:
        raise ScoringFailure(
            f"the run's data files hold {rows} rows, the audit passed {expected_rows}; "
            "nothing published",
            job=commit.job,
            ds=ds.isoformat(),
            file=folder,
        )
    actions = [
        AddAction(
            f.path,
            f.size,
            {partition_column: ds.isoformat()},
            f.modified_ms,
            True,
            json.dumps(f.stats),
        )
        for f in files
    ]
    properties = CommitProperties(
        custom_metadata={
            "userMetadata": commit.user_metadata(partition_predicate(partition_column, ds))
        },
        app_transactions=[Transaction(app_id, txn_version)],
        max_commit_retries=0,
    )
    last_error: Exception | None = None
    for _attempt in range(_COMMIT_ATTEMPTS):
        existing = _already_published(uri, app_id, txn_version, commit, ds)
        if existing is not None:
            return existing
        table = _delta_table(uri)
        try:
            table.create_write_transaction(
                actions,
                mode="overwrite",
                schema=table.schema(),
                partition_by=[partition_column],
                partition_filters=[(partition_column, "=", ds.isoformat())],
                commit_properties=properties,
            )
            break
        except CommitFailedError as exc:  # another commit won the version: re-check, retry
            last_error = exc
    else:
        raise PublishConflict(
            f"another run committed to this partition at the same time "
            f"({type(last_error).__name__}, {_COMMIT_ATTEMPTS} attempts); nothing of this run "
            "was published, retry",
            job=commit.job,
            ds=ds.isoformat(),
        ) from last_error
    return _committed_version(uri, commit, ds)


def _committed_version(uri: str, commit: CommitInfo, ds: date) -> int:
    """The table version of the commit a publish just made (found by its run id)."""
    version = find_commit(uri, commit.run_id)
    if version is None:
        raise ScoringFailure(
            "publish finished but its commit is not in the table history",
            job=commit.job,
            ds=ds.isoformat(),
            file=uri,
        )
    return version


def _replace_with_spark(
    df: DataFrame,
    uri: str,
    partition_column: str,
    ds: date,
    commit: CommitInfo,
    txn_version: int,
    app_id: str,
) -> int:
    """delta-spark's ``replaceWhere`` overwrite, for tables the delta-rs path does not take."""
    try:
        (
            df.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", partition_predicate(partition_column, ds))
            .option("txnAppId", app_id)
            .option("txnVersion", str(txn_version))
            .option("userMetadata", commit.user_metadata(partition_predicate(partition_column, ds)))
            .save(storage.spark_path(uri))
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
    return _committed_version(uri, commit, ds)


_DELTA_CONFLICT = re.compile(
    r"\b(\w*Concurrent\w*Exception|\w*ProtocolChangedException|\w*MetadataChangedException)\b"
)


def delta_conflict_name(error_text: str) -> str | None:
    """The Delta conflict exception named in an error (e.g. ``ConcurrentAppendException``
    inside a Py4JJavaError), or None when the error is not a write conflict."""
    match = _DELTA_CONFLICT.search(error_text)
    return match.group(1) if match else None


def find_commit(uri: str, run_id: str, search_last: int | None = 50) -> int | None:
    """Version of the commit that carries ``run_id`` in its metadata, if any (recent first;
    ``search_last=None`` searches the whole history)."""
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
    writer.save(storage.spark_path(uri))
