"""Preemptible executors: a worker killed with -9, or decommissioned (SIGPWR), while the scoring
stage runs. The job must still publish exactly the partition an undisturbed run publishes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.cluster import StandaloneCluster
from tests.chaos.conftest import BIG_DAY, BIG_ROWS, ChaosWorld, finish
from tests.conftest import lineage_rows
from tests.support.processes import kill_group, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

PROFILE = "standalone+spot"


def published(uri: str, day: date) -> dict[str, list[Any]]:
    """Partition ``day`` as delta-rs reads it, sorted by key."""
    from lakescore.lakehouse import tables

    rows = tables.read_table(uri, partition_column="ds", start=day, end=day)
    rows = rows.sort_by("customer_id")
    return {c: rows[c].to_pylist() for c in ("customer_id", "score", "model_version", "run_id")}


def assert_same_partition(got: dict[str, list[Any]], want: dict[str, list[Any]]) -> None:
    assert len(got["customer_id"]) == BIG_ROWS
    assert len(set(got["customer_id"])) == BIG_ROWS, "duplicate keys"
    assert got["customer_id"] == want["customer_id"], "keys differ (missing or extra rows)"
    assert got["score"] == want["score"], "scores differ"
    assert set(got["model_version"]) == set(want["model_version"])
    assert len(set(got["model_version"])) == 1
    assert len(set(got["run_id"])) == 1, "rows of more than one run"


def scoring_tasks_running(staging_root: str, table: str, job: str, day: date) -> bool:
    """A task of the scoring write (read -> score -> Parquet, one stage) has begun writing:
    into the run's folder in the prediction table, or into the private staging folder."""
    task_files = "*/_temporary/0/_temporary/*/part-*"
    return any((Path(table) / f"ds={day.isoformat()}").glob(task_files)) or any(
        (Path(staging_root) / job / day.isoformat()).glob(task_files)
    )


@pytest.fixture(scope="module")
def baseline(chaos_world: ChaosWorld, cluster: StandaloneCluster) -> dict[str, list[Any]]:
    """The partition an undisturbed run on the cluster publishes."""
    result = chaos_world.score(
        "chaos", BIG_DAY, LAKESCORE_SPARK_PROFILE=PROFILE, LAKESCORE_SPARK_MASTER_URL=cluster.url
    )
    rows = lineage_rows(chaos_world.world, run_id=result["run_id"])
    assert rows[-1]["status"] == "succeeded"
    assert rows[-1]["lost_executors"] == 0
    assert rows[-1]["spark_master"] == cluster.url
    return published(chaos_world.job("chaos").output.table, BIG_DAY)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("disruption", ["kill_worker", "decommission_worker"])
def test_disrupted_run_publishes_the_undisturbed_partition(
    chaos_world: ChaosWorld,
    cluster: StandaloneCluster,
    baseline: dict[str, list[Any]],
    disruption: str,
) -> None:
    platform = chaos_world.platform
    job = chaos_world.job("chaos")
    # Whole again after an earlier disruption (restored here rather than after each test:
    # nothing runs on the cluster after the last one).
    cluster.restore_workers()
    process = chaos_world.start_score(
        "chaos",
        BIG_DAY,
        LAKESCORE_SPARK_PROFILE=PROFILE,
        LAKESCORE_SPARK_MASTER_URL=cluster.url,
    )
    try:
        wait_until(
            lambda: (
                scoring_tasks_running(platform.staging_root, job.output.table, "chaos", BIG_DAY)
                or process.poll() is not None
            ),
            timeout=300,
            what="the scoring stage to start",
            step=0.05,
        )
        assert process.poll() is None, "the run ended before the scoring stage was seen"
        if disruption == "kill_worker":
            killed = cluster.kill_worker(0)
            assert len(killed) >= 2, f"expected the worker and its executor, got {killed}"
        else:
            cluster.decommission_worker(0)
        still_running = scoring_tasks_running(
            platform.staging_root, job.output.table, "chaos", BIG_DAY
        )
        result = finish(process)
    finally:
        kill_group(process)  # no driver outlives a failed wait or assertion (no-op after finish)

    assert result["status"] == "succeeded"
    assert_same_partition(published(job.output.table, BIG_DAY), baseline)
    row = lineage_rows(chaos_world.world, run_id=result["run_id"])[-1]
    assert row["status"] == "succeeded"
    assert row["output_rows"] == BIG_ROWS
    assert row["lost_executors"] >= 1, row["details"]
    if disruption == "kill_worker" and still_running:
        # the killed executor's running task failed and was retried elsewhere
        assert row["failed_tasks"] >= 1
    assert row["failed_tasks"] is not None
