"""The lineage table: one row per run attempt, success or failure, append-only.

Rows are appended with delta-rs (a blind append: concurrent attempts never conflict), so an
attempt that fails before any Spark session exists (bad input found by the JVM-free checks, or
an Airflow task) is recorded the same way as one that ran Spark. Analysts read the table like
any other Delta table.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from lakescore.lakehouse import layout
from lakescore.redaction import redact, redact_deep
from lakescore.storage import delta_options


@cache
def code_version() -> str:
    """``$LAKESCORE_CODE_VERSION``, else package version + git commit when run from a clone."""
    if env := os.environ.get("LAKESCORE_CODE_VERSION"):
        return env
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("lakescore")
    except PackageNotFoundError:
        base = "0+unknown"
    from lakescore.config import PROJECT_ROOT

    repo = PROJECT_ROOT
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{base}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return base


@dataclass
class AirflowIds:
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None

    @classmethod
    def from_env(cls) -> AirflowIds:
        """Airflow exports ``AIRFLOW_CTX_*`` to tasks (and our spark-submit passes them on)."""
        try_number = os.environ.get("AIRFLOW_CTX_TRY_NUMBER")
        return cls(
            dag_id=os.environ.get("AIRFLOW_CTX_DAG_ID"),
            run_id=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
            task_id=os.environ.get("AIRFLOW_CTX_TASK_ID"),
            try_number=int(try_number) if try_number and try_number.isdigit() else None,
        )


@dataclass
class LineageRecord:
    """Field names and types follow :func:`lakescore.lakehouse.layout.lineage_schema`."""

    attempt_id: str
    run_id: str
    action: str
    job: str
    ds: date | None
    status: str
    started_at: datetime
    finished_at: datetime
    error_class: str | None = None
    error: str | None = None
    duration_s: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    airflow: AirflowIds = field(default_factory=AirflowIds)
    input_table: str | None = None
    input_version: int | None = None
    input_rows: int | None = None
    validation_status: str | None = None
    validation_evaluated: int | None = None
    validation_failed: int | None = None
    validation_report: str | None = None
    rejected_rows: int | None = None
    drift_status: str | None = None
    psi_previous: float | None = None
    psi_baseline: float | None = None
    model_name: str | None = None
    model_version: int | None = None
    model_alias: str | None = None
    model_run_id: str | None = None
    model_source: str | None = None
    output_table: str | None = None
    output_version: int | None = None
    output_rows: int | None = None
    spark_app_id: str | None = None
    spark_master: str | None = None
    rows_per_s: float | None = None
    executor_seconds: float | None = None
    failed_tasks: int | None = None
    code_version: str = field(default_factory=code_version)
    user: str = field(default_factory=lambda: _current_user())
    host: str = field(default_factory=socket.gethostname)
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    cost: float | None = None
    cost_per_1k: float | None = None
    lost_executors: int | None = None

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        airflow = row.pop("airflow")
        row.update({f"airflow_{k}": v for k, v in airflow.items()})
        row["stage_seconds"] = [(k, float(v)) for k, v in self.stage_seconds.items()]
        row["details"] = (
            json.dumps(redact_deep(self.details), sort_keys=True, default=str)
            if self.details
            else None
        )
        # No credentials in lineage (table URIs, model source, error text): see redaction.py.
        row = {k: redact(v) if isinstance(v, str) else v for k, v in row.items()}
        if self.duration_s is None:
            row["duration_s"] = (self.finished_at - self.started_at).total_seconds()
        return row


def _current_user() -> str:
    try:
        return os.environ.get("LAKESCORE_USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def utcnow() -> datetime:
    return datetime.now(UTC)


def append_lineage(uri: str, records: list[LineageRecord]) -> None:
    """Append rows (creating the table on first use)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = layout.lineage_schema()
    table = pa.Table.from_pylist([r.to_row() for r in records], schema=schema)
    # delta-rs retries an append that lost the race for a version (appends commute); on S3
    # each attempt is a conditional PUT of the log entry, so parallel runs' rows all land.
    write_deltalake(
        uri, table, mode="append", schema_mode="merge", storage_options=delta_options(uri)
    )


def find_lineage(uri: str, **equals: Any) -> list[dict[str, Any]]:
    """Lineage rows whose columns equal ``equals``, oldest first."""
    from lakescore.lakehouse import tables

    return tables.select_rows(uri, sort_by="started_at", **equals)
