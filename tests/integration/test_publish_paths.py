"""Both publish paths of lakescore.run.score_path, end to end and by name: the delta-rs
commit of files written in place, and delta-spark's ``replaceWhere`` rewrite of staged rows
(taken by every table whose protocol delta-rs does not commit to: here a table with Change
Data Feed on, writer version 4)."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from lakescore.lakehouse import tables
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration


def _details(world: World, run_id: str) -> dict:
    (row,) = lineage_rows(world, run_id=run_id)
    return json.loads(row["details"])


def test_delta_spark_replace_where_publishes_replaces_and_keeps_other_days(world, spark):
    world.variant_job("spark_publish", lambda t: t, "validation: {enabled: false}\n")
    job = world.job("spark_publish")
    uri = job.output.table
    first = score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    # the table's first publish stages (no table to write into yet); delta-rs commits it
    assert _details(world, first.run_id)["publish_path"] == "staging"
    (created,) = [h for h in tables.history(uri) if h["version"] == first.output_version]
    assert not str(created.get("engineInfo", "")).startswith("Apache-Spark")
    assert tables.commits_with_delta_rs(uri)

    spark.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    assert not tables.commits_with_delta_rs(uri)
    second = score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    details = _details(world, second.run_id)
    assert (details["publish_path"], details["score_writer"]) == ("staging", "spark")

    (commit,) = [h for h in tables.history(uri) if h["version"] == second.output_version]
    assert commit["engineInfo"].startswith("Apache-Spark")  # delta-spark wrote it
    assert "predicate" in commit["operationParameters"]  # replaceWhere of that day only
    assert commit["lakescore"]["lakescore_run_id"] == second.run_id

    rerun = score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    assert rerun.output_version == second.output_version + 1
    rows = tables.read_table(uri, partition_column="ds", start=DAYS[0], end=DAYS[1])
    by_day = rows.group_by("ds").aggregate([("customer_id", "count_distinct")]).to_pylist()
    counts = {row["ds"]: row["customer_id_count_distinct"] for row in by_day}
    assert counts == {DAYS[0]: ROWS_PER_DAY, DAYS[1]: ROWS_PER_DAY}  # replaced, not added
    day2 = rows.filter(pc.equal(rows["ds"], DAYS[1]))
    assert set(day2["run_id"].to_pylist()) == {rerun.run_id}
    day1 = rows.filter(pc.equal(rows["ds"], DAYS[0]))
    assert set(day1["run_id"].to_pylist()) == {first.run_id}  # the other day untouched
