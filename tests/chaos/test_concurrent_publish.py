"""Two scoring processes publishing to the same prediction table at the same time.

Different days: both land (including the very first publish, where both try to create the
table). Same day: never a mixed partition; one wins, the other publishes after it (a later run
replaces the partition whole) or fails with a clear conflict message.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.chaos.conftest import ChaosWorld, finish
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

JOB = "race"


def partition(uri: str, day: Any) -> tuple[int, int, set[str]]:
    from lakescore.lakehouse import tables

    rows = tables.read_table(uri, partition_column="ds", start=day, end=day)
    keys = rows["customer_id"].to_pylist()
    return rows.num_rows, len(set(keys)), set(rows["run_id"].to_pylist())


@pytest.mark.timeout(900)
def test_two_days_at_once_both_land_even_on_the_first_publish(chaos_world: ChaosWorld) -> None:
    from lakescore.lakehouse import tables

    uri = chaos_world.job(JOB).output.table
    assert not tables.table_exists(uri), "the first publish must create the table"

    first, second = (chaos_world.start_score(JOB, day) for day in DAYS[:2])
    results = [finish(first), finish(second)]

    for day, result in zip(DAYS[:2], results, strict=True):
        assert result["status"] == "succeeded"
        assert partition(uri, day) == (ROWS_PER_DAY, ROWS_PER_DAY, {result["run_id"]})
    # two commits (each one its own table version), after the one that created the table
    assert len({r["output_version"] for r in results}) == 2
    assert min(r["output_version"] for r in results) >= 1


@pytest.mark.timeout(900)
def test_two_runs_of_one_day_never_mix(chaos_world: ChaosWorld) -> None:
    uri = chaos_world.job(JOB).output.table
    day = DAYS[2]

    processes = [chaos_world.start_score(JOB, day) for _ in range(2)]
    outcomes = [finish(p, expect_ok=False) for p in processes]
    for outcome in outcomes:
        if outcome["returncode"] == 0:
            continue
        # the loser names the conflict, the job and the partition, and published nothing
        assert outcome["returncode"] == 1, outcome["stderr"][-2000:]
        assert "PublishConflict" in outcome["stderr"] or (
            "another run committed to this partition" in outcome["stderr"]
            or "a newer run already published this partition" in outcome["stderr"]
        ), outcome["stderr"][-2000:]
        assert f"partition {day}" in outcome["stderr"]

    rows = [r for r in lineage_rows(chaos_world.world, job=JOB, ds=day) if r["action"] == "score"]
    assert len(rows) == 2
    run_ids = {r["run_id"] for r in rows if r["status"] == "succeeded"}
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(run_ids) + len(failed) == 2 and run_ids, rows
    assert all(r["error_class"] == "PublishConflict" for r in failed)
    for r in failed:  # names the Delta conflict, or the newer publish that refused it
        assert re.search(
            r"at the same time \(\w+(Exception|Error)\b|a newer run already", r["error"]
        )

    count, unique, published_by = partition(uri, day)
    assert count == unique == ROWS_PER_DAY
    assert len(published_by) == 1 and published_by <= run_ids, "mixed or foreign partition"
    # the partition is the last successful publish's
    last = max((r for r in rows if r["status"] == "succeeded"), key=lambda r: r["output_version"])
    assert published_by == {last["run_id"]}
    print(
        f"same day: {len(run_ids)} succeeded, {len(failed)} failed "
        f"({[r['error'][:120] for r in failed]})"
    )
