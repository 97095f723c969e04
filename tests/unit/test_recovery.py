"""Attempt markers, abandoned attempts and the fault hook, without Spark (lineage via delta-rs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from lakescore.config import load_job, load_platform
from lakescore.lakehouse.lineage import LineageRecord, utcnow
from lakescore.ops.recovery import (
    MARKER_SUFFIX,
    AttemptMarker,
    fault_point,
    maintain,
    recover_abandoned,
)

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 20)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    monkeypatch.setenv("LAKESCORE_WAREHOUSE", str(tmp_path / "warehouse"))
    platform = load_platform(tmp_path / "conf")
    return platform, load_job("churn", platform=platform)


def record(run_id: str) -> LineageRecord:
    now = utcnow()
    return LineageRecord(
        attempt_id=f"attempt-{run_id}",
        run_id=run_id,
        action="score",
        job="churn",
        ds=DAY,
        status="running",
        started_at=now,
        finished_at=now,
        model_version=3,
    )


def dead_pid() -> tuple[int, int | None]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid, None


def lineage(platform) -> list[dict]:
    from lakescore.lakehouse import tables

    if not tables.table_exists(platform.lineage_table):
        return []
    return tables.read_table(platform.lineage_table).to_pylist()


def staged_attempt(platform, run_id: str, *, pid: int | None = None) -> AttemptMarker:
    staging = Path(platform.staging_root) / "churn" / DAY.isoformat() / run_id
    staging.mkdir(parents=True)
    (staging / "part-0.parquet").write_bytes(b"staged")
    marker = AttemptMarker(staging, record(run_id))
    if pid is not None:
        marker.pid, marker.start_ticks = pid, None
    marker.write("drift")
    return marker


def test_marker_is_written_atomically_and_removed(setup) -> None:
    platform, _ = setup
    marker = staged_attempt(platform, "r1")

    body = json.loads(marker.path.read_text())
    assert marker.path.name == "r1" + MARKER_SUFFIX
    assert body["stage"] == "drift" and body["pid"] == os.getpid()
    assert body["model_version"] == 3 and body["ds"] == DAY.isoformat()
    assert [p.name for p in marker.path.parent.iterdir() if p.name.startswith(".")] == []

    marker.remove()
    assert not marker.path.exists()


def test_live_attempt_is_left_alone(setup) -> None:
    platform, job = setup
    marker = staged_attempt(platform, "alive")  # this test process: alive

    report = recover_abandoned(platform, job)

    assert report.abandoned == []
    assert marker.path.exists() and (marker.path.parent / "alive").exists()
    assert lineage(platform) == []


def test_dead_attempt_becomes_an_abandoned_lineage_row_and_its_staging_goes(setup) -> None:
    platform, job = setup
    pid, _ = dead_pid()
    marker = staged_attempt(platform, "dead", pid=pid)

    report = recover_abandoned(platform, job)

    assert [a["run_id"] for a in report.abandoned] == ["dead"]
    assert not marker.path.exists()
    assert not (marker.path.parent / "dead").exists()
    rows = lineage(platform)
    assert len(rows) == 1
    row = rows[0]
    assert (row["run_id"], row["attempt_id"], row["status"]) == (
        "dead",
        "attempt-dead",
        "abandoned",
    )
    assert row["error_class"] == "AbandonedAttempt"
    assert f"pid {pid}" in row["error"] and "stage 'drift'" in row["error"]
    assert row["ds"] == DAY and row["model_version"] == 3 and row["output_version"] is None
    assert json.loads(row["details"])["abandoned"]["last_stage"] == "drift"
    # a second pass finds nothing more to record
    assert recover_abandoned(platform, job).abandoned == []
    assert len(lineage(platform)) == 1


def test_a_dead_attempts_uncommitted_files_in_both_tables_go(setup) -> None:
    """Files a dead attempt's tasks wrote into the run folders of the prediction and the
    shadow table, never committed, are removed with its staging."""
    from lakescore.lakehouse import tables

    platform, job = setup
    pid, _ = dead_pid()
    staged_attempt(platform, "dead", pid=pid)
    folders = [
        tables.run_folder(uri, "ds", DAY, "dead") for uri in (job.output.table, job.shadow_table)
    ]
    for folder in folders:
        os.makedirs(folder)
        Path(folder, "part-00000-0-x.parquet").write_bytes(b"scores")
    other = tables.run_folder(job.output.table, "ds", DAY, "another-run")
    os.makedirs(other)

    report = recover_abandoned(platform, job)

    assert [a["run_id"] for a in report.abandoned] == ["dead"]
    assert not any(os.path.exists(f) for f in folders)
    assert all(any(f in removed for removed in report.removed_staging) for f in folders)
    assert os.path.isdir(other)  # another run's folder is not the dead attempt's


def test_marker_from_another_host_is_abandoned_only_when_stale(setup) -> None:
    platform, job = setup
    marker = staged_attempt(platform, "elsewhere")
    body = json.loads(marker.path.read_text())
    marker.path.write_text(json.dumps({**body, "host": "some-other-host"}))

    assert recover_abandoned(platform, job, stale_after=timedelta(hours=1)).abandoned == []
    old = marker.path.stat().st_mtime - 7200
    os.utime(marker.path, (old, old))
    found = recover_abandoned(platform, job, stale_after=timedelta(hours=1)).abandoned
    assert [a["run_id"] for a in found] == ["elsewhere"]


def test_maintenance_removes_stale_unmarked_staging(setup) -> None:
    platform, job = setup
    stray = Path(platform.staging_root) / "churn" / DAY.isoformat() / "no-marker"
    stray.mkdir(parents=True)
    old = stray.stat().st_mtime - 7200
    os.utime(stray, (old, old))

    report = maintain(platform, job, stale_after=timedelta(hours=1))

    assert report.removed_staging == [str(stray)]
    assert not (Path(platform.staging_root) / "churn").joinpath(DAY.isoformat()).exists()


def test_maintenance_compacts_the_shared_tables_and_keeps_every_row(setup) -> None:
    """One small file per run in the metrics and lineage tables: maintenance rewrites them
    into one, the rows and the reads of them (drift's previous partition) unchanged."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from lakescore.lakehouse import layout, tables
    from lakescore.lakehouse.lineage import append_lineage
    from lakescore.quality.monitoring import previous_published

    platform, job = setup
    for i in range(6):
        row = {
            "run_id": f"r{i}",
            "job": "churn",
            "ds": date(2026, 11, 10 + i),
            "role": "champion",
            "computed_at": utcnow(),
            "published": True,
            "drift_status": "ok",
            "bin_edges": [0.0, 0.5, 1.0],
            "bin_counts": [i, 10 - i],
        }
        write_deltalake(
            platform.metrics_table,
            pa.Table.from_pylist([row], schema=layout.metrics_schema()),
            mode="append",
        )
        append_lineage(platform.lineage_table, [record(f"r{i}")])
    before = previous_published(platform.metrics_table, "churn", date(2026, 11, 15))
    rows_before = tables.read_table(platform.metrics_table).sort_by("run_id")

    report = maintain(platform, job)

    assert report.compacted[platform.metrics_table] == {"files_removed": 6, "files_added": 1}
    assert report.compacted[platform.lineage_table]["files_removed"] == 6
    assert len(DeltaTable(platform.metrics_table).file_uris()) == 1
    assert tables.read_table(platform.metrics_table).sort_by("run_id").equals(rows_before)
    assert before == (date(2026, 11, 14), [0.0, 0.5, 1.0], [4, 6])
    assert previous_published(platform.metrics_table, "churn", date(2026, 11, 15)) == before
    assert report.to_dict()["compacted"] == report.compacted


def test_fault_point_kills_only_when_named() -> None:
    code = "from lakescore.ops.recovery import fault_point; fault_point('before_publish'); print('alive')"
    env = {**os.environ, "LAKESCORE_FAULT": "before_publish"}
    killed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL and "alive" not in killed.stdout

    env["LAKESCORE_FAULT"] = "after_publish"
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert other.returncode == 0 and "alive" in other.stdout

    with pytest.raises(ValueError, match="unknown fault point"):
        fault_point("somewhere")


def test_publish_conflict_names_the_delta_exception() -> None:
    from lakescore.lakehouse.tables import delta_conflict_name

    py4j = (
        "Py4JJavaError An error occurred while calling o412.save.\n: "
        "io.delta.exceptions.ConcurrentAppendException: [DELTA_CONCURRENT_APPEND] ..."
    )
    assert delta_conflict_name(py4j) == "ConcurrentAppendException"
    assert delta_conflict_name("x: io.delta.exceptions.MetadataChangedException: y") == (
        "MetadataChangedException"
    )
    assert delta_conflict_name("Py4JJavaError: java.io.IOException: disk full") is None
    assert delta_conflict_name(": DeltaConcurrentModificationException: x") == (
        "DeltaConcurrentModificationException"
    )
