"""Driver death: attempt markers, abandoned attempts, and the maintenance that cleans up after them.

A run killed with SIGKILL (a lost Airflow worker, an OOM-killed driver, a preempted driver
node) cannot write its own lineage row nor delete its staged files. So every scoring attempt
leaves a small marker next to its staging folder when it starts::

    <warehouse>/_staging/<job>/<ds>/<run_id>.attempt.json     (the marker)
    <warehouse>/_staging/<job>/<ds>/<run_id>/                 (staged Parquet, if it got there)
    <prediction table>/<ds column>=<ds>/lakescore-<run_id>/   (or, without challengers, the
                                                               data files to commit)

and removes both once its lineage row is written. A marker whose process is gone is an
*abandoned* attempt: the next run of the same job (and ``lakescore maintenance --job J``) turns
it into a lineage row with ``status = abandoned`` (the last stage it reached, whether its
publish landed) and deletes its staged files, and its data files in the table folder unless a
table version committed them.

What readers see meanwhile: staged files live under ``_staging``, never read by analysts. A
driver killed during the Delta commit either wrote the commit's log entry (the new version is
complete) or did not (its data files are in the table folder but in no log entry, so every
Delta reader ignores them). ``lakescore maintenance`` removes such uncommitted files with
delta-rs VACUUM once they are older than the retention period (default 7 days, Delta's own
default: a younger file may belong to a write that is still running).

Testing hook: ``LAKESCORE_FAULT=<point>`` makes the run SIGKILL itself at that point (see
:data:`FAULT_POINTS`); inert unless set. Chaos tests use it to kill the driver at exact places.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.lakehouse.lineage import AirflowIds, LineageRecord, append_lineage, utcnow

FAULT_ENV = "LAKESCORE_FAULT"
# Where ``LAKESCORE_FAULT`` may stop a run: after the staged files are written, right before
# the publish commit, right after the commit (before the lineage row).
FAULT_POINTS = ("after_staging", "before_publish", "after_publish")
MARKER_SUFFIX = ".attempt.json"
# A marker from another host is considered abandoned once it has not been touched this long
# (its process cannot be checked from here). Markers are touched at every stage change.
DEFAULT_STALE_AFTER = timedelta(hours=6)


def fault_point(name: str) -> None:
    """Testing hook: SIGKILL this process if ``$LAKESCORE_FAULT`` names this point."""
    if name not in FAULT_POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _process_alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    current = _process_start_ticks(pid)
    return start_ticks is None or current is None or current == start_ticks


class AttemptMarker:
    """The on-disk proof that an attempt started; rewritten at every stage change."""

    def __init__(self, staging_dir: Path, record: LineageRecord) -> None:
        self.path = staging_dir.parent / f"{staging_dir.name}{MARKER_SUFFIX}"
        self.record = record
        self.pid = os.getpid()
        self.start_ticks = _process_start_ticks(self.pid)
        self.host = socket.gethostname()
        self.stage = "start"

    def write(self, stage: str | None = None) -> None:
        self.stage = stage or self.stage
        r = self.record
        body = {
            "attempt_id": r.attempt_id,
            "run_id": r.run_id,
            "action": r.action,
            "job": r.job,
            "ds": r.ds.isoformat() if r.ds else None,
            "started_at": r.started_at.isoformat(),
            "stage": self.stage,
            "pid": self.pid,
            "pid_start_ticks": self.start_ticks,
            "host": self.host,
            "airflow": vars(r.airflow),
            "input_table": r.input_table,
            "input_version": r.input_version,
            "model_name": r.model_name,
            "model_version": r.model_version,
            "output_table": r.output_table,
            "spark_app_id": r.spark_app_id,
            "spark_master": r.spark_master,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{self.pid}.tmp")
        tmp.write_text(json.dumps(body, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a reader never sees half a marker

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class MaintenanceReport:
    job: str
    abandoned: list[dict[str, Any]] = field(default_factory=list)
    removed_staging: list[str] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    orphans_deleted: bool = False
    # shared table -> {"files_removed": n, "files_added": m} (or {"error": ...})
    compacted: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "abandoned": self.abandoned,
            "removed_staging": self.removed_staging,
            "orphan_files": self.orphan_files,
            "orphans_deleted": self.orphans_deleted,
            "compacted": self.compacted,
        }


def recover_abandoned(
    platform: PlatformConfig,
    job: ScoringJob,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    report: MaintenanceReport | None = None,
) -> MaintenanceReport:
    """Record every abandoned attempt of ``job`` in lineage and delete its staged files.

    An attempt is abandoned when its marker names a process on this host that no longer
    exists, or (another host) when the marker is older than ``stale_after``. Attempts still
    running are left alone, so this is safe to call while other runs of the job work.
    """
    report = report or MaintenanceReport(job.name)
    job_root = Path(platform.staging_root) / job.name
    for marker in sorted(job_root.glob(f"*/*{MARKER_SUFFIX}")):
        try:
            body = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue  # vanished meanwhile (its run finished) or being rewritten
        if not _is_abandoned(body, marker, stale_after):
            continue
        # Claim it: of two recoverers racing, only the one whose rename succeeds records it.
        claimed = marker.with_name(f".{marker.name}.recovering.{os.getpid()}")
        try:
            os.rename(marker, claimed)
        except FileNotFoundError:
            continue
        # (a rename keeps the mtime: the claimed file still says when the attempt was last seen)
        report.abandoned.append(_record_abandoned(platform, job, body, claimed))
        staged = marker.parent / marker.name.removesuffix(MARKER_SUFFIX)
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
            report.removed_staging.append(str(staged))
        removed = _remove_uncommitted_files(job, body)
        if removed:
            report.removed_staging.append(removed)
        claimed.unlink(missing_ok=True)
    return report


def _remove_uncommitted_files(job: ScoringJob, body: dict[str, Any]) -> str | None:
    """The data files an abandoned attempt wrote into the prediction table's folder (and
    the shadow table's) and never committed (it died between its scoring pass and its
    commit); the removed folders, comma-separated."""
    from lakescore.lakehouse import tables

    removed = []
    for uri in (job.output.table, job.shadow_table):
        try:
            folder = tables.remove_uncommitted_run_folder(
                uri,
                job.features.partition_column,
                date.fromisoformat(str(body["ds"])),
                str(body["run_id"]),
            )
        except (KeyError, ValueError, OSError):
            folder = None
        if folder is not None:
            removed.append(folder)
    return ", ".join(removed) or None


def _is_abandoned(body: dict[str, Any], marker: Path, stale_after: timedelta) -> bool:
    if body.get("host") == socket.gethostname():
        return not _process_alive(int(body["pid"]), body.get("pid_start_ticks"))
    try:
        age = time.time() - marker.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > stale_after.total_seconds()


def _record_abandoned(
    platform: PlatformConfig, job: ScoringJob, body: dict[str, Any], marker: Path
) -> dict[str, Any]:
    from lakescore.lakehouse import tables

    output_version = None
    output_table = body.get("output_table") or job.output.table
    if tables.table_exists(output_table):
        output_version = tables.find_commit(output_table, body["run_id"], search_last=200)
    last_seen = datetime.fromtimestamp(marker.stat().st_mtime, tz=UTC)
    started = datetime.fromisoformat(body["started_at"])
    landed = (
        f"; its publish had landed (table version {output_version})"
        if output_version is not None
        else "; nothing of it was published"
    )
    message = (
        f"the process (pid {body['pid']} on {body['host']}) died during stage "
        f"{body['stage']!r} without recording its outcome{landed}; staged files removed"
    )
    airflow = body.get("airflow") or {}
    record = LineageRecord(
        attempt_id=body["attempt_id"],
        run_id=body["run_id"],
        action=body.get("action") or "score",
        job=body["job"],
        ds=date.fromisoformat(body["ds"]) if body.get("ds") else None,
        status="abandoned",
        started_at=started,
        finished_at=max(last_seen, started),
        error_class="AbandonedAttempt",
        error=f"job {body['job']!r}, partition {body.get('ds')}: {message}",
        airflow=AirflowIds(**{k: airflow.get(k) for k in vars(AirflowIds())}),
        input_table=body.get("input_table"),
        input_version=body.get("input_version"),
        model_name=body.get("model_name"),
        model_version=body.get("model_version"),
        output_table=output_table,
        output_version=output_version,
        spark_app_id=body.get("spark_app_id"),
        spark_master=body.get("spark_master"),
        details={
            "abandoned": {
                "last_stage": body["stage"],
                "pid": body["pid"],
                "host": body["host"],
                "last_seen": last_seen.isoformat(),
                "recovered_at": utcnow().isoformat(),
                "recovered_by_pid": os.getpid(),
            }
        },
    )
    append_lineage(platform.lineage_table, [record])
    return {
        "run_id": body["run_id"],
        "ds": body.get("ds"),
        "last_stage": body["stage"],
        "output_version": output_version,
    }


def remove_stray_staging(
    platform: PlatformConfig, job: ScoringJob, *, older_than: timedelta, report: MaintenanceReport
) -> None:
    """Staging folders with no marker (their run ended but could not delete them), older
    than ``older_than``."""
    job_root = Path(platform.staging_root) / job.name
    cutoff = time.time() - older_than.total_seconds()
    for folder in sorted(p for p in job_root.glob("*/*") if p.is_dir()):
        marker = folder.parent / f"{folder.name}{MARKER_SUFFIX}"
        if marker.exists() or folder.stat().st_mtime > cutoff:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        report.removed_staging.append(str(folder))
    for day in sorted(p for p in job_root.glob("*") if p.is_dir()):
        if not any(day.iterdir()):
            day.rmdir()


def vacuum_uncommitted(
    uri: str, *, retention_hours: int, dry_run: bool, report: MaintenanceReport
) -> None:
    """Files in the table folder that no Delta version references (a writer killed before
    its commit) and files removed from the table longer ago than ``retention_hours``: listed,
    and deleted unless ``dry_run``. Uses delta-rs VACUUM (full: untracked files too)."""
    from deltalake import DeltaTable

    from lakescore.lakehouse import tables

    if not tables.table_exists(uri):
        return
    table = DeltaTable(uri)
    files = table.vacuum(
        retention_hours=retention_hours,
        dry_run=dry_run,
        # Below the table's retention only when asked explicitly (nothing else may be writing)
        enforce_retention_duration=retention_hours >= 168,
        full=True,
    )
    report.orphan_files.extend(sorted(files))
    report.orphans_deleted = not dry_run


def compact_shared_tables(platform: PlatformConfig, report: MaintenanceReport) -> None:
    """The lineage and metrics tables (shared by every job) grow by one small file per run;
    every drift check and report reads the metrics table, so after a year of runs it would
    open thousands of files. delta-rs OPTIMIZE (compact) rewrites them into few; the old
    files stay for time travel until VACUUM. A compaction that loses a race with a run's
    append is reported and left for the next maintenance."""
    from deltalake import DeltaTable

    from lakescore.lakehouse import tables

    for uri in (platform.lineage_table, platform.metrics_table):
        if not tables.table_exists(uri):
            continue
        try:
            metrics = DeltaTable(uri).optimize.compact()
        except Exception as exc:  # a concurrent commit; nothing is lost, the files stay
            report.compacted[uri] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            continue
        report.compacted[uri] = {
            "files_removed": int(metrics.get("numFilesRemoved", 0)),
            "files_added": int(metrics.get("numFilesAdded", 0)),
        }


def maintain(
    platform: PlatformConfig,
    job: ScoringJob,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    retention_hours: int = 168,
    dry_run: bool = False,
) -> MaintenanceReport:
    """``lakescore maintenance --job J``: abandoned attempts -> lineage, stale staging removed,
    the shared lineage and metrics tables compacted, uncommitted/expired files of the
    prediction table vacuumed (``dry_run``: only listed)."""
    report = MaintenanceReport(job.name)
    if not dry_run:
        recover_abandoned(platform, job, stale_after=stale_after, report=report)
        remove_stray_staging(platform, job, older_than=stale_after, report=report)
        compact_shared_tables(platform, report)
    vacuum_uncommitted(
        job.output.table, retention_hours=retention_hours, dry_run=dry_run, report=report
    )
    return report
