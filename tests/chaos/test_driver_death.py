"""Driver death: the scoring process SIGKILLed between staging and publishing, and during the
Delta commit. Readers must see the old version or the new one, never a partial partition; the
killed attempt must show up in lineage; the next run (or ``lakescore maintenance``) must clean
up and publish correctly."""

from __future__ import annotations

import signal
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lakescore.cli import main as lakescore_cli
from lakescore.ops.recovery import MARKER_SUFFIX
from tests.chaos.conftest import ChaosWorld, finish
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows
from tests.support.processes import kill_group, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

DAY = DAYS[0]
JOB = "crash"


def partition_state(uri: str, day: date) -> dict[str, Any]:
    """Version, rows, keys and run ids of partition ``day`` as delta-rs sees it now."""
    from deltalake import DeltaTable

    from lakescore.lakehouse import tables

    rows = tables.read_table(uri, partition_column="ds", start=day, end=day)
    keys = rows["customer_id"].to_pylist()
    return {
        "version": DeltaTable(uri).version(),
        "rows": rows.num_rows,
        "unique_keys": len(set(keys)),
        "run_ids": set(rows["run_id"].to_pylist()),
        "scores": dict(zip(keys, rows["score"].to_pylist(), strict=True)),
    }


def spark_view(spark: Any, uri: str, day: date) -> tuple[int, set[str]]:
    from pyspark.sql import functions as F

    part = spark.read.format("delta").load(uri).where(F.col("ds") == F.lit(day))
    run_ids = {r["run_id"] for r in part.select("run_id").distinct().collect()}
    return part.count(), run_ids


def data_files(uri: str) -> set[str]:
    """Every Parquet file in the table's partition folders (a run writes its own subfolder)."""
    return {str(p.relative_to(uri)) for p in Path(uri).glob("ds=*/**/*.parquet")}


def referenced_files(uri: str) -> set[str]:
    from deltalake import DeltaTable

    return {str(Path(u).relative_to(uri)) for u in DeltaTable(uri).file_uris()}


def leftovers(chaos_world: ChaosWorld) -> list[str]:
    root = Path(chaos_world.platform.staging_root) / JOB
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*")) if root.exists() else []


@pytest.fixture(scope="module")
def first_publish(chaos_world: ChaosWorld) -> dict[str, Any]:
    """Partition DAY published once, undisturbed (the 'old version' readers must keep)."""
    result = chaos_world.score(JOB, DAY)
    assert result["rows"] == ROWS_PER_DAY
    return result


def assert_old_or_new(state: dict[str, Any], old: dict[str, Any], killed_run: str) -> str:
    """The partition is exactly the old one or exactly the killed run's complete one."""
    assert state["rows"] == ROWS_PER_DAY and state["unique_keys"] == ROWS_PER_DAY, state["rows"]
    assert len(state["run_ids"]) == 1, f"mixed partition: {state['run_ids']}"
    if state["run_ids"] == old["run_ids"]:
        assert state["version"] == old["version"] and state["scores"] == old["scores"]
        return "old"
    assert state["run_ids"] == {killed_run}
    assert state["version"] == old["version"] + 1
    return "new"


@pytest.mark.timeout(600)
def test_driver_killed_between_staging_and_publish(
    chaos_world: ChaosWorld, first_publish: dict[str, Any], spark: Any
) -> None:
    """spark-submit's driver SIGKILLs itself right before the commit (LAKESCORE_FAULT)."""
    uri = chaos_world.job(JOB).output.table
    old = partition_state(uri, DAY)

    process = chaos_world.start_score(JOB, DAY, spark_submit=True, LAKESCORE_FAULT="before_publish")
    outcome = finish(process, expect_ok=False)

    assert outcome["returncode"] != 0
    assert partition_state(uri, DAY) == old
    assert spark_view(spark, uri, DAY) == (ROWS_PER_DAY, old["run_ids"])
    # the killed attempt left its marker and its scored files: in the table's folder, in no
    # Delta version (readers above saw the old partition) ...
    markers = list((Path(chaos_world.platform.staging_root) / JOB).glob(f"*/*{MARKER_SUFFIX}"))
    assert len(markers) == 1
    killed_run = markers[0].name.removesuffix(MARKER_SUFFIX)
    run_folder = Path(uri) / f"ds={DAY.isoformat()}" / f"lakescore-{killed_run}"
    written = {str(p.relative_to(uri)) for p in run_folder.glob("part-*.parquet")}
    assert written and not written & referenced_files(uri)
    assert not lineage_rows(chaos_world.world, run_id=killed_run)

    # ... which `lakescore maintenance` turns into an `abandoned` lineage row, then deletes
    assert lakescore_cli(["--conf", str(chaos_world.conf_dir), "maintenance", "--job", JOB]) == 0
    rows = lineage_rows(chaos_world.world, run_id=killed_run)
    assert [r["status"] for r in rows] == ["abandoned"]
    assert rows[0]["error_class"] == "AbandonedAttempt"
    assert "died during stage 'drift'" in rows[0]["error"]
    assert "nothing of it was published" in rows[0]["error"]
    assert rows[0]["output_version"] is None
    assert leftovers(chaos_world) == []
    assert not run_folder.exists()
    assert partition_state(uri, DAY) == old


@pytest.mark.timeout(900)
# 0.0 s: the data files are written but not committed (readers see the old version, the next
# run finds uncommitted files); 0.8 s: the commit has landed (readers see the new version) or
# the run finished. 0.3 s was dropped: it saw what 0.0 s sees (old version, 2 uncommitted
# files) at the cost of a killed run plus a recovery run (~90-120 s on a busy 2-core machine).
@pytest.mark.parametrize("delay_s", [0.0, 0.8])
def test_driver_killed_during_the_delta_commit(
    chaos_world: ChaosWorld, first_publish: dict[str, Any], spark: Any, delay_s: float
) -> None:
    """Kill the driver's whole process group ``delay_s`` after the run's first data file
    appears in the table folder (written by the scoring pass, committed by the publish after
    the audit: before or after its log entry, the invariant must hold whatever the instant)."""
    uri = chaos_world.job(JOB).output.table
    old = partition_state(uri, DAY)
    before = data_files(uri)

    process = chaos_world.start_score(JOB, DAY)
    wait_until(
        lambda: (data_files(uri) - before) or process.poll() is not None,
        timeout=400,
        what="the run to write its first data file",
        step=0.01,
    )
    time.sleep(delay_s)
    kill_group(process)
    assert process.returncode in (-signal.SIGKILL, 0), process.returncode

    markers = list((Path(chaos_world.platform.staging_root) / JOB).glob(f"*/*{MARKER_SUFFIX}"))
    if not markers:  # a quiet machine: the run got past its lineage row before the kill
        state = partition_state(uri, DAY)
        (run_id,) = state["run_ids"]
        assert state["version"] > old["version"]
        assert state["rows"] == state["unique_keys"] == ROWS_PER_DAY
        statuses = [r["status"] for r in lineage_rows(chaos_world.world, run_id=run_id)]
        assert statuses == ["succeeded"]
        return
    (marker,) = markers
    killed_run = marker.name.removesuffix(MARKER_SUFFIX)
    state = partition_state(uri, DAY)
    seen = assert_old_or_new(state, old, killed_run)
    assert spark_view(spark, uri, DAY) == (ROWS_PER_DAY, state["run_ids"])
    orphans = data_files(uri) - referenced_files(uri) - before
    print(f"delay {delay_s}s: readers see the {seen} version; {len(orphans)} uncommitted files")

    # The next run records the abandoned attempt, cleans its staging and publishes.
    result = chaos_world.score(JOB, DAY)
    abandoned = lineage_rows(chaos_world.world, run_id=killed_run)
    assert [r["status"] for r in abandoned] == ["abandoned"]
    assert abandoned[0]["output_version"] == (state["version"] if seen == "new" else None)
    assert leftovers(chaos_world) == []
    after = partition_state(uri, DAY)
    assert after["run_ids"] == {result["run_id"]}
    assert after["rows"] == after["unique_keys"] == ROWS_PER_DAY
    assert after["version"] == state["version"] + 1

    # Uncommitted files are invisible to readers; maintenance vacuums them (retention 0: no
    # other writer runs here).
    assert (
        lakescore_cli(
            [
                "--conf",
                str(chaos_world.conf_dir),
                "maintenance",
                "--job",
                JOB,
                "--retention-hours",
                "0",
            ]
        )
        == 0
    )
    assert data_files(uri) == referenced_files(uri)
    assert partition_state(uri, DAY) == {**after, "version": partition_state(uri, DAY)["version"]}
    assert spark_view(spark, uri, DAY) == (ROWS_PER_DAY, {result["run_id"]})
