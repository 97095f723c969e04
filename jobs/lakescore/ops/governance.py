"""Governance of published predictions: rollback of a partition, right to erasure, VACUUM.

* :func:`rollback_to_version` restores partition ``ds`` of a job's prediction table exactly as
  it was at table version ``V`` (Delta time travel read + one ``replaceWhere`` commit, the same
  publish path as a scoring run, with a new, larger ``txnVersion`` so an older run cannot
  overwrite the rollback afterwards). :func:`rollback_to_model_version` re-scores the
  partition with an earlier model version (a normal scoring run, lineage action
  ``rollback``).
* :func:`erase` deletes every row derived from the entities listed in a CSV file from every
  table of :func:`governed_tables` (one ``MERGE ... WHEN MATCHED THEN DELETE`` commit per
  table, the keys joined as a DataFrame, never pasted into SQL), and records one lineage row
  per job with the deleted counts per table (never the keys).
* :func:`vacuum` makes deletions physical: ``VACUUM`` with ``governance.erasure_retention``
  (after ``REORG ... APPLY (PURGE)`` when a table uses deletion vectors), so time travel to a
  version before the erasure no longer returns the erased rows.

Every lineage row carries ``user`` (``$LAKESCORE_USER`` or the OS user) and ``reason``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore.config import (
    IDENTIFIER_PATTERN,
    PlatformConfig,
    ScoringJob,
    list_job_names,
    load_job,
)
from lakescore.errors import BadInputError, ScoringFailure, as_lakescore_error
from lakescore.lakehouse import layout, tables
from lakescore.lakehouse.lineage import AirflowIds, LineageRecord, append_lineage, utcnow
from lakescore.storage import filesystem_and_path, is_object_store

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class GovernedTable:
    kind: str  # "predictions" | "rejects" | "shadow"
    uri: str


def governed_tables(job: ScoringJob, platform: PlatformConfig) -> list[GovernedTable]:
    """Every table that holds rows derived from the job's entities (erasure covers them all).

    Add a table kind here and erasure, its lineage counts and VACUUM cover it.
    """
    return [
        GovernedTable("predictions", job.output.table),
        GovernedTable("rejects", platform.rejects_table(job.name)),
        GovernedTable("shadow", job.shadow_table),
    ]


def _spark(platform: PlatformConfig, spark: SparkSession | None, job: ScoringJob) -> SparkSession:
    if spark is not None:
        return spark
    from lakescore.spark import get_spark_session

    return get_spark_session(platform, job.spark_profile, app_name=f"lakescore-govern-{job.name}")


@contextlib.contextmanager
def _session_conf(spark: SparkSession, **settings: str) -> Iterator[None]:
    """Set Spark SQL confs for the duration of the block, then restore them."""
    previous = {k: spark.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def _record(
    action: str, job: str, ds: date | None, reason: str | None, run_id: str
) -> LineageRecord:
    now = utcnow()
    return LineageRecord(
        attempt_id=uuid.uuid4().hex,
        run_id=run_id,
        action=action,
        job=job,
        ds=ds,
        status="running",
        started_at=now,
        finished_at=now,
        airflow=AirflowIds.from_env(),
        reason=reason,
    )


def _close(platform: PlatformConfig, record: LineageRecord, error: Exception | None = None) -> None:
    record.finished_at = utcnow()
    record.duration_s = (record.finished_at - record.started_at).total_seconds()
    if error is None:
        record.status = "succeeded"
    else:
        record.status = "failed"
        record.error_class = type(error).__name__
        record.error = str(error)[:4000]
    append_lineage(platform.lineage_table, [record])


# --------------------------------------------------------------------------- rollback


@dataclass
class RollbackResult:
    job: str
    ds: date
    run_id: str
    mode: str  # "table_version" | "model_version"
    from_table_version: int | None
    to: int  # the table version restored, or the model version re-scored with
    output_version: int | None
    rows: int
    model_versions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "ds": self.ds.isoformat(),
            "run_id": self.run_id,
            "mode": self.mode,
            "from_table_version": self.from_table_version,
            "to": self.to,
            "output_version": self.output_version,
            "rows": self.rows,
            "model_versions": self.model_versions,
        }


def rollback_to_version(
    job: ScoringJob,
    ds: str | date,
    version: int,
    *,
    platform: PlatformConfig,
    reason: str,
    spark: SparkSession | None = None,
) -> RollbackResult:
    """Restore partition ``ds`` of the prediction table as it was at table ``version``, in one
    commit; other partitions are untouched. Refuses (BadInputError) when the version does not
    exist, can no longer be time-travelled to, or has no rows for ``ds``."""
    day = tables.parse_partition_date(ds, job=job.name)
    _require_reason(reason, job.name)
    uri, part_col = job.output.table, job.features.partition_column
    started = utcnow()
    run_id = f"{job.name}-{day.isoformat()}-rollback-{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    record = _record("rollback", job.name, day, reason, run_id)
    record.output_table = uri
    try:
        latest = tables.table_version(uri)
        if latest is None:
            raise BadInputError("no predictions published yet: nothing to roll back", file=uri)
        record.details = {
            "mode": "table_version",
            "from_table_version": latest,
            "to_table_version": version,
        }
        at_version = _restorable_partition(uri, part_col, day, version, latest)
        source = _version_commit(uri, version, day)
        spark = _spark(platform, spark, job)
        restored = tables.read_partition(spark, uri, part_col, day, version)
        models = _models_of(restored)
        rows = at_version.rows if at_version.rows is not None else restored.count()
        commit = _rollback_commit(job, day, run_id, models, source, rows, version, record)
        # A new, larger txnVersion: a run that started before this rollback cannot overwrite it.
        out_version = tables.replace_partition(
            restored, uri, part_col, day, commit, txn_version=int(time.time() * 1000)
        )
        record.output_version, record.output_rows = out_version, rows
        record.model_name = commit.model_name
        record.model_version = commit.model_version
        record.input_table, record.input_version = commit.input_table, commit.input_version
        record.details["restored_run_id"] = source.get("lakescore_run_id")
        record.details["model_versions"] = [v for _, v in models]
    except Exception as exc:
        err = as_lakescore_error(exc, job=job.name, ds=day.isoformat())
        _close(platform, record, err)
        if err is exc:
            raise
        raise err from exc
    _close(platform, record)
    return RollbackResult(
        job=job.name,
        ds=day,
        run_id=run_id,
        mode="table_version",
        from_table_version=latest,
        to=version,
        output_version=out_version,
        rows=rows,
        model_versions=[v for _, v in models],
    )


def _restorable_partition(
    uri: str, part_col: str, day: date, version: int, latest: int
) -> tables.PartitionInfo:
    """Partition ``day`` as table ``version`` holds it; BadInputError when that version does
    not exist, cannot be time-travelled to any more, or has no such partition."""
    if not 0 <= version <= latest:
        raise BadInputError(
            f"table version {version} does not exist (versions 0..{latest})", file=uri
        )
    try:
        at_version = tables.partition_info(uri, part_col, day, version)
    except BadInputError as exc:
        raise BadInputError(
            f"table version {version} cannot be read any more (log or files cleaned up: "
            f"{exc.message})",
            file=uri,
        ) from None
    if at_version.files == 0:
        raise BadInputError(
            f"table version {version} has no partition {part_col}={day}; nothing to restore",
            file=uri,
        )
    return at_version


def _models_of(restored: DataFrame) -> list[tuple[str, int]]:
    """The (model name, version) pairs that scored the restored rows."""
    pairs = restored.select(layout.MODEL_NAME, layout.MODEL_VERSION).distinct().collect()
    return sorted({(r[layout.MODEL_NAME], int(r[layout.MODEL_VERSION])) for r in pairs})


def _rollback_commit(
    job: ScoringJob,
    day: date,
    run_id: str,
    models: list[tuple[str, int]],
    source: dict[str, Any],
    rows: int,
    version: int,
    record: LineageRecord,
) -> tables.CommitInfo:
    """The commit metadata of a rollback: the restored rows' model and input snapshot, and
    which version and run they came from, why and by whom."""
    input_version = source.get("input_version")
    return tables.CommitInfo(
        run_id=run_id,
        job=job.name,
        ds=day,
        model_name=models[0][0] if models else job.model.name,
        model_version=models[0][1] if models else 0,
        input_table=str(source.get("input_table") or job.features.table),
        input_version=int(input_version) if input_version is not None else -1,
        rows=rows,
        extra={
            "action": "rollback",
            "restored_table_version": version,
            "restored_run_id": source.get("lakescore_run_id"),
            "reason": record.reason,
            "user": record.user,
        },
    )


def _version_commit(uri: str, version: int, day: date) -> dict[str, Any]:
    """The lakescore metadata of the newest commit at or before ``version`` that published
    ``day`` (its run id and input snapshot), or {} when none carries ours."""
    for entry in tables.history(uri):
        meta = entry.get("lakescore")
        if (
            int(entry["version"]) <= version
            and isinstance(meta, dict)
            and meta.get("ds") == day.isoformat()
        ):
            return meta
    return {}


def rollback_to_model_version(
    job: ScoringJob,
    ds: str | date,
    model_version: int,
    *,
    platform: PlatformConfig,
    reason: str,
    spark: SparkSession | None = None,
    progress: Any = None,
) -> RollbackResult:
    """Re-score partition ``ds`` with model version ``model_version`` (write-audit-publish as
    any run); its lineage row says ``action = rollback`` with the reason."""
    from lakescore.run import score_partition

    day = tables.parse_partition_date(ds, job=job.name)
    _require_reason(reason, job.name)
    previous = None
    if tables.table_exists(job.output.table):
        previous = tables.table_version(job.output.table)
    result = score_partition(
        job,
        day,
        platform=platform,
        spark=spark,
        model_version=model_version,
        progress=progress,
        action="rollback",
        reason=reason,
        lineage_details={
            "mode": "model_version",
            "from_table_version": previous,
            "to_model_version": model_version,
        },
    )
    return RollbackResult(
        job=job.name,
        ds=day,
        run_id=result.run_id,
        mode="model_version",
        from_table_version=previous,
        to=model_version,
        output_version=result.output_version,
        rows=result.rows,
        model_versions=[result.model_version],
    )


def _require_reason(reason: str | None, job: str) -> None:
    if not reason or not reason.strip():
        raise BadInputError("say why (--reason): it goes into lineage", job=job, key="reason")


# --------------------------------------------------------------------------- erasure


@dataclass
class TableErasure:
    job: str
    kind: str
    uri: str
    rows_deleted: int
    version: int | None  # the DELETE commit; None when the table does not exist


@dataclass
class ErasureResult:
    erasure_id: str
    entity_file: str
    key_columns: list[str]
    entities: int
    tables: list[TableErasure]
    vacuum: list[dict[str, Any]] = field(default_factory=list)
    # when VACUUM (with governance.erasure_retention) can delete the files that still hold
    # the erased rows for time travel
    physically_deletable_after: datetime | None = None

    @property
    def rows_deleted(self) -> int:
        return sum(t.rows_deleted for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "entity_file": self.entity_file,
            "key_columns": self.key_columns,
            "entities": self.entities,
            "rows_deleted": self.rows_deleted,
            "tables": [t.__dict__ for t in self.tables],
            "vacuum": self.vacuum,
            "physically_deletable_after": self.physically_deletable_after.isoformat()
            if self.physically_deletable_after
            else None,
        }


def read_entity_header(path: str | Path) -> list[str]:
    """The key columns named by the CSV's header row (checked to be plain identifiers)."""
    file = Path(path)
    try:
        with file.open(newline="") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise BadInputError("entity file not found", file=str(file)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"cannot read the entity file: {exc}", file=str(file)) from None
    columns = [c.strip() for c in header or []]
    if not columns or not all(columns):
        raise BadInputError(
            "the first row must name the entity key columns (e.g. customer_id)", file=str(file)
        )
    for column in columns:
        if not IDENTIFIER_PATTERN.fullmatch(column):
            raise BadInputError("header is not a plain column name", file=str(file), column=column)
    if len(set(columns)) != len(columns):
        raise BadInputError(f"header repeats a column: {columns}", file=str(file))
    return columns


def read_entity_keys(path: str | Path, key_schema: pa.Schema) -> pa.Table:
    """The CSV's keys typed like ``key_schema`` (the table's key columns), distinct.

    A value that does not parse as its column's type (or an empty one) is bad input naming the
    file and the column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    file = Path(path)
    as_text = pacsv.read_csv(
        file,
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: pa.string() for f in key_schema},
            strings_can_be_null=False,
        ),
    )
    columns = []
    for f in key_schema:
        text = pc.utf8_trim_whitespace(as_text[f.name])
        if pc.any(pc.equal(text, "")).as_py():
            raise BadInputError("empty key value in the entity file", file=str(file), column=f.name)
        try:
            columns.append(text.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise BadInputError(
                f"a key does not parse as {f.type}: {str(exc).splitlines()[0]}",
                file=str(file),
                column=f.name,
            ) from None
    keys = pa.table(columns, names=[f.name for f in key_schema])
    return keys.group_by([f.name for f in key_schema]).aggregate([])


def jobs_for_keys(
    platform: PlatformConfig, key_columns: list[str], entity_file: str, only: list[str] | None
) -> list[ScoringJob]:
    """The jobs whose entity keys are exactly ``key_columns`` (order does not matter)."""
    names = only or list_job_names(platform.conf_dir)
    jobs = [load_job(n, platform=platform) for n in names]
    matching = [j for j in jobs if set(j.features.entity_keys) == set(key_columns)]
    if only and len(matching) != len(jobs):
        wrong = [j for j in jobs if j not in matching]
        raise BadInputError(
            f"the header names {key_columns}, but job {wrong[0].name!r} has entity keys "
            f"{wrong[0].features.entity_keys}",
            file=entity_file,
            job=wrong[0].name,
        )
    if not matching:
        known = "; ".join(f"{j.name}: {j.features.entity_keys}" for j in jobs) or "no jobs"
        raise BadInputError(
            f"no job has exactly the entity keys {key_columns} named by the header ({known})",
            file=entity_file,
        )
    return matching


def erase(
    platform: PlatformConfig,
    entity_file: str | Path,
    *,
    reason: str,
    jobs: list[str] | None = None,
    vacuum_after: bool = False,
    spark: SparkSession | None = None,
) -> ErasureResult:
    """Delete every row of the listed entities from every governed table of every matching job:
    one MERGE (WHEN MATCHED THEN DELETE) commit per table; one lineage row per job with the
    deleted counts per table. ``vacuum_after`` then runs :func:`vacuum` on those tables."""
    file = str(Path(entity_file).resolve())
    key_columns = read_entity_header(file)
    matching = jobs_for_keys(platform, key_columns, file, jobs)
    erasure_id = f"erase-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    reason = reason or ""
    result = ErasureResult(erasure_id, file, key_columns, 0, [])
    for job in matching:
        record = _record("erase", job.name, None, reason or None, erasure_id)
        record.details = {"entity_file": Path(file).name, "key_columns": key_columns, "tables": {}}
        try:
            # The first table's key types decide how the file is parsed (and fail early).
            for target in governed_tables(job, platform):
                if not tables.table_exists(target.uri):
                    result.tables.append(TableErasure(job.name, target.kind, target.uri, 0, None))
                    record.details["tables"][target.kind] = {"table": target.uri, "exists": False}
                    continue
                schema = tables.table_schema(target.uri)
                keys = read_entity_keys(file, _key_schema(schema, job, target.uri))
                result.entities = max(result.entities, keys.num_rows)
                spark = _spark(platform, spark, job)
                deleted, version = _delete_keys(
                    spark,
                    target.uri,
                    keys,
                    metadata={
                        "lakescore_run_id": erasure_id,
                        "action": "erase",
                        "job": job.name,
                        "reason": reason,
                        "entities": keys.num_rows,
                    },
                )
                result.tables.append(
                    TableErasure(job.name, target.kind, target.uri, deleted, version)
                )
                record.details["tables"][target.kind] = {
                    "table": target.uri,
                    "rows_deleted": deleted,
                    "version": version,
                }
            record.details["entities"] = result.entities
            record.output_rows = sum(t.rows_deleted for t in result.tables if t.job == job.name)
            if vacuum_after:
                done = vacuum(platform, job, spark=spark)
                result.vacuum.extend(done)
                record.details["vacuum"] = done
        except Exception as exc:
            err = as_lakescore_error(exc, job=job.name)
            _close(platform, record, err)
            if err is exc:
                raise
            raise err from exc
        _close(platform, record)
    result.physically_deletable_after = utcnow() + platform.governance.erasure_retention
    return result


def _key_schema(schema: pa.Schema, job: ScoringJob, uri: str) -> pa.Schema:
    import pyarrow as pa

    missing = [k for k in job.features.entity_keys if k not in schema.names]
    if missing:
        raise BadInputError("entity key column missing from the table", file=uri, column=missing[0])
    return pa.schema([schema.field(k) for k in job.features.entity_keys])


def _delete_keys(
    spark: SparkSession, uri: str, keys: pa.Table, *, metadata: dict[str, Any]
) -> tuple[int, int | None]:
    """``MERGE INTO uri USING keys ON <all key columns equal> WHEN MATCHED THEN DELETE`` in one
    commit; returns (rows deleted, commit version). The keys are a DataFrame, never SQL text.
    On object storage the MERGE is delta-rs's (every S3 commit is a delta-rs conditional PUT,
    see :mod:`lakescore.storage`)."""
    if is_object_store(uri):
        return _delete_keys_delta_rs(uri, keys, metadata=metadata)
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    before = tables.table_version(uri)
    source = spark.createDataFrame(keys)
    condition = None
    for column in keys.column_names:
        term = F.col(f"t.`{column}`") == F.col(f"k.`{column}`")
        condition = term if condition is None else condition & term
    with _session_conf(spark, **{_USER_METADATA: json.dumps(metadata, sort_keys=True)}):
        (
            DeltaTable.forPath(spark, uri)
            .alias("t")
            .merge(F.broadcast(source).alias("k"), condition)
            .whenMatchedDelete()
            .execute()
        )
    after = tables.table_version(uri)
    if after == before:  # no commit: nothing matched
        return 0, None
    entry = next(e for e in tables.history(uri, 5) if int(e["version"]) == after)
    metrics = entry.get("operationMetrics") or {}
    deleted = metrics.get("numTargetRowsDeleted")
    if deleted is None:
        raise ScoringFailure(
            f"erase commit {after} carries no numTargetRowsDeleted metric ({entry.get('operation')})",
            file=uri,
        )
    return int(deleted), after


def _delete_keys_delta_rs(
    uri: str, keys: pa.Table, *, metadata: dict[str, Any]
) -> tuple[int, int | None]:
    """The same MERGE ... WHEN MATCHED THEN DELETE with delta-rs; the predicate is built from
    validated key column names only, the values stay in the source table."""
    from deltalake.transaction import CommitProperties

    for column in keys.column_names:
        tables.partition_predicate(column, date(2000, 1, 1))  # refuses a non-plain name
    predicate = " AND ".join(f"t.`{c}` = k.`{c}`" for c in keys.column_names)
    before = tables.table_version(uri)
    merge = tables._delta_table(uri).merge(
        keys,
        predicate,
        source_alias="k",
        target_alias="t",
        commit_properties=CommitProperties(
            custom_metadata={"userMetadata": json.dumps(metadata, sort_keys=True)}
        ),
    )
    metrics = merge.when_matched_delete().execute()
    deleted = int(metrics.get("num_target_rows_deleted", 0))
    after = tables.table_version(uri)
    return deleted, (after if after != before else None)


# --------------------------------------------------------------------------- vacuum


def vacuum(
    platform: PlatformConfig,
    job: ScoringJob,
    *,
    spark: SparkSession | None = None,
    record_lineage: bool = False,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """VACUUM every governed table of the job with ``governance.erasure_retention``: files that
    left the table more than that long ago are deleted, so old versions stop returning erased
    rows. Tables with deletion vectors are purged first (REORG ... APPLY (PURGE)) so the
    erased rows leave the data files that stay."""
    from delta.tables import DeltaTable

    hours = platform.governance.erasure_retention.total_seconds() / 3600.0
    done: list[dict[str, Any]] = []
    record = _record("vacuum", job.name, None, reason, f"vacuum-{uuid.uuid4().hex[:12]}")
    try:
        for target in governed_tables(job, platform):
            if not tables.table_exists(target.uri):
                continue
            files_before = _data_files(target.uri)
            if is_object_store(target.uri):  # delta-rs: the one engine that commits on S3
                tables._delta_table(target.uri).vacuum(
                    retention_hours=int(hours), enforce_retention_duration=False, dry_run=False
                )
                removed = len(files_before - _data_files(target.uri))
                done.append(_vacuumed(target, hours, removed, purged=False))
                continue
            spark = _spark(platform, spark, job)
            purged = False
            config = tables._delta_table(target.uri).metadata().configuration
            if config.get("delta.enableDeletionVectors", "false").lower() == "true":
                spark.sql(f"REORG TABLE delta.`{_sql_path(target.uri)}` APPLY (PURGE)")
                purged = True
            with _session_conf(
                spark, **{"spark.databricks.delta.retentionDurationCheck.enabled": "false"}
            ):
                DeltaTable.forPath(spark, target.uri).vacuum(hours)
            removed = len(files_before - _data_files(target.uri))
            done.append(_vacuumed(target, hours, removed, purged=purged))
        record.details = {"tables": done, "retention_hours": hours}
    except Exception as exc:
        err = as_lakescore_error(exc, job=job.name)
        if record_lineage:
            _close(platform, record, err)
        if err is exc:
            raise
        raise err from exc
    if record_lineage:
        _close(platform, record)
    return done


def _vacuumed(target: GovernedTable, hours: float, removed: int, *, purged: bool) -> dict:
    return {
        "kind": target.kind,
        "table": target.uri,
        "retention_hours": hours,
        "files_deleted": removed,
        "purged_deletion_vectors": purged,
    }


def _data_files(uri: str) -> set[str]:
    """Parquet files under a table root, local or on object storage (what VACUUM deletes)."""
    if is_object_store(uri):
        import pyarrow.fs as pafs

        fs, path = filesystem_and_path(uri)
        found = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True))
        return {
            f.path for f in found if f.path.endswith(".parquet") and "/_delta_log/" not in f.path
        }
    root = Path(uri)
    if not root.is_dir():
        return set()
    return {str(p) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def _sql_path(uri: str) -> str:
    if "`" in uri:
        raise BadInputError("table path contains a backtick", file=uri)
    return uri
