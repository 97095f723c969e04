"""Notebook / analyst API: read score and lineage tables without a JVM (delta-rs + DuckDB).

Example::

    import lakescore
    scores = lakescore.read_scores("churn", "2026-11-16", "2026-11-20").to_pandas()
    yesterday_view = lakescore.read_scores("churn", as_of_version=3)
    lakescore.sql("select ds, avg(score) from scores_churn group by ds").fetchall()
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lakescore.config import PlatformConfig, list_job_names, load_job, load_platform
from lakescore.errors import BadInputError
from lakescore.lakehouse import tables
from lakescore.storage import is_object_store

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_log = logging.getLogger(__name__)


def read_scores(
    job: str,
    start: str | date | None = None,
    end: str | date | None = None,
    as_of_version: int | None = None,
    *,
    conf_dir: str | Path | None = None,
) -> pa.Table:
    """Predictions of ``job`` for partitions ``start..end`` (inclusive), optionally as the table
    was at ``as_of_version`` (Delta time travel)."""
    platform = load_platform(conf_dir)
    spec = load_job(job, platform=platform)
    start_d = tables.parse_partition_date(start, job=job) if start else None
    end_d = tables.parse_partition_date(end, job=job) if end else None
    if not tables.table_exists(spec.output.table):
        raise BadInputError("no predictions published yet", job=job, file=spec.output.table)
    return tables.read_table(
        spec.output.table,
        version=as_of_version,
        partition_column=spec.features.partition_column,
        start=start_d,
        end=end_d,
    )


def read_lineage(conf_dir: str | Path | None = None) -> pa.Table:
    """The whole lineage table (one row per run attempt)."""
    platform = load_platform(conf_dir)
    return tables.read_table(platform.lineage_table)


def duckdb_extension_path() -> str:
    """The Delta extension shipped by the ``duckdb-extension-delta`` wheel (no download)."""
    import duckdb
    import duckdb_extension_delta

    root = Path(duckdb_extension_delta.__file__).parent / "extensions"
    candidates = sorted(root.glob(f"v{duckdb.__version__}/*.duckdb_extension"))
    if not candidates:
        raise BadInputError(
            f"duckdb-extension-delta has no build for duckdb {duckdb.__version__} in {root}"
        )
    return str(candidates[0])


def connect(platform: PlatformConfig | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views over every lakescore table that exists:
    ``scores_<job>``, ``features_<job>`` and ``lineage`` (local tables through the delta
    extension, tables on object storage through delta-rs's Arrow dataset)."""
    import duckdb

    platform = platform or load_platform()
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute("LOAD ?".replace("?", _quote(duckdb_extension_path())))
    views = {"lineage": platform.lineage_table, "metrics": platform.metrics_table}
    for name in list_job_names(platform.conf_dir):
        try:
            spec = load_job(name, platform=platform)
        except BadInputError:
            continue
        views[f"scores_{name}"] = spec.output.table
        views[f"features_{name}"] = spec.features.table
        views[f"shadow_{name}"] = spec.shadow_table
    for view, uri in views.items():
        if not tables.table_exists(uri):
            continue
        try:
            if is_object_store(uri):
                # DuckDB's delta_scan needs its httpfs extension for s3://, which would be
                # downloaded at run time: scan delta-rs's Arrow dataset of the table instead
                # (same snapshot, filters and projections pushed down, storage.py's settings).
                con.register(view, tables._delta_table(uri).to_pyarrow_dataset())
            else:
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM delta_scan({_quote(uri)})")
        except (duckdb.Error, BadInputError) as exc:  # one unreadable table must not hide all
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _log.warning("view %s left out: %s cannot be read (%s)", view, uri, first)
    return con


def _quote(text: str) -> str:
    """A SQL string literal (paths come from our config, but quote them properly anyway)."""
    return "'" + text.replace("'", "''") + "'"


def sql(query: str, platform: PlatformConfig | None = None) -> duckdb.DuckDBPyRelation:
    """Run SQL over the lakescore views (see :func:`connect`)."""
    return connect(platform).sql(query)
