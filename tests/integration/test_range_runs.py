"""Range runs (lakescore.run.range): many partitions of one job in one Spark session, each
its own write-audit-publish, commit and lineage row."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakescore.errors import BadInputError
from lakescore.lakehouse import tables
from lakescore.run.range import range_days, range_exit_code, score_range
from tests.conftest import DAYS, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration


def _spoil_middle_day(table: pa.Table) -> pa.Table:
    """DAYS[1]: monthly_charges = +inf in two rows (bad input the audit refuses)."""
    charges = table["monthly_charges"].to_pylist()
    spoiled = 0
    for i, day in enumerate(table["ds"].to_pylist()):
        if day == DAYS[1] and spoiled < 2:
            charges[i] = float("inf")
            spoiled += 1
    return table.set_column(
        table.schema.get_field_index("monthly_charges"),
        "monthly_charges",
        pa.array(charges, table.schema.field("monthly_charges").type),
    )


def _rows_per_day(uri: str) -> dict[date, int]:
    rows = tables.read_table(uri, partition_column="ds", start=DAYS[0], end=DAYS[-1])
    counts = rows.group_by("ds").aggregate([("customer_id", "count")]).to_pylist()
    return {r["ds"]: r["customer_id_count"] for r in counts}


def test_range_days_are_inclusive_and_bad_ranges_name_the_job(world: World) -> None:
    job = world.job()
    assert range_days("2026-11-18", "2026-11-20", job=job) == DAYS
    assert range_days(DAYS[0], DAYS[0], job=job) == [DAYS[0]]
    with pytest.raises(BadInputError, match=r"churn.*before"):
        range_days("2026-11-20", "2026-11-18", job=job)


def test_a_range_publishes_each_day_once_and_a_bad_day_fails_alone(world: World, spark) -> None:
    world.variant_job("ranged", _spoil_middle_day, "validation: {enabled: false}\n")
    job = world.job("ranged")
    seen = []
    outcomes = score_range(
        job,
        DAYS,
        platform=world.platform,
        spark=spark,
        on_partition=lambda outcome, progress: seen.append((outcome.ds, progress)),
    )
    assert [o.status for o in outcomes] == ["succeeded", "failed", "succeeded"]
    bad = outcomes[1]
    assert isinstance(bad.error, BadInputError) and "monthly_charges" in str(bad.error)
    assert "2026-11-19" in str(bad.error)
    assert range_exit_code(outcomes) == 2
    # progress after every partition, the last one complete
    assert [ds for ds, _ in seen] == DAYS
    assert [p.done for _, p in seen] == [1, 2, 3] and seen[-1][1].eta_s == 0
    assert seen[-1][1].failed == 1 and seen[-1][1].rows == 2 * ROWS_PER_DAY

    assert _rows_per_day(job.output.table) == {DAYS[0]: ROWS_PER_DAY, DAYS[2]: ROWS_PER_DAY}
    # one commit per published day, one lineage row per partition, all in one application
    commits = [h for h in tables.history(job.output.table) if h.get("lakescore")]
    assert sorted(h["lakescore"]["ds"] for h in commits) == ["2026-11-18", "2026-11-20"]
    rows = lineage_rows(world, job="ranged")
    assert sorted((r["ds"], r["status"]) for r in rows) == [
        (DAYS[0], "succeeded"),
        (DAYS[1], "failed"),
        (DAYS[2], "succeeded"),
    ]
    assert {r["spark_app_id"] for r in rows} == {spark.sparkContext.applicationId}
    assert {r["model_version"] for r in rows if r["status"] == "succeeded"} == {world.model_v1}
    ranges = [json.loads(r["details"])["range"] for r in rows]
    assert sorted(r["index"] for r in ranges) == [1, 2, 3]
    assert {(r["from"], r["to"], r["of"]) for r in ranges} == {("2026-11-18", "2026-11-20", 3)}

    # a rerun of the range replaces each day, never adds to it
    first_runs = {o.ds: o.result.run_id for o in outcomes if o.result}
    again = score_range(job, [DAYS[0], DAYS[2]], platform=world.platform, spark=spark)
    assert [o.status for o in again] == ["succeeded", "succeeded"]
    assert range_exit_code(again) == 0
    assert _rows_per_day(job.output.table) == {DAYS[0]: ROWS_PER_DAY, DAYS[2]: ROWS_PER_DAY}
    published = tables.read_table(job.output.table, partition_column="ds")
    for o in again:
        day_rows = published.filter(pc.equal(published["ds"], o.ds))
        assert set(day_rows["run_id"].to_pylist()) == {o.result.run_id} != {first_runs[o.ds]}


def test_cli_range_run_prints_each_partition_and_exits_by_the_worst_failure(world: World):
    """``lakescore score --from --to`` in a real subprocess: one line per partition with
    progress, a summary, exit 2 when the only failures were bad input (a missing day)."""
    import os
    import subprocess
    import sys

    world.variant_job("ranged_cli", lambda t: t)  # validation on (the default)
    env = {**os.environ, "LAKESCORE_CONF": str(world.conf_dir)}
    day_after = "2026-11-21"  # no such partition
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lakescore.cli",
            "score",
            "--job",
            "ranged_cli",
            "--from",
            "2026-11-20",
            "--to",
            day_after,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "2/2 partitions, 1 failed" in done.stderr
    assert "ds=2026-11-21 not found in the feature table" in done.stderr
    assert "1 of 2 partitions, 3,000 rows; failed: 2026-11-21" in done.stdout
    assert "Traceback" not in done.stderr and "Py4J" not in done.stderr

    both = subprocess.run(
        [
            sys.executable,
            "-m",
            "lakescore.cli",
            "score",
            "--job",
            "ranged_cli",
            "--ds",
            DAYS[0].isoformat(),
            "--from",
            "2026-11-20",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert both.returncode == 2 and "give --ds D, or --from D1 --to D2" in both.stderr
