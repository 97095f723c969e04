"""The rest of the flow on a warehouse on S3 (moto on loopback): rerun, time travel, rollback,
erase + vacuum, SQL, read_scores and the report. Every commit on S3 is delta-rs's; the tests
read what landed with delta-rs and the bucket listing, not with Spark."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.compute as pc
import pytest

from lakescore import api
from lakescore.config import GovernanceSpec
from lakescore.lakehouse import tables
from lakescore.ops.governance import erase, rollback_to_version
from lakescore.reporting.report import write_job_report
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY
from tests.s3.conftest import BUCKET

pytestmark = pytest.mark.integration
DAY = DAYS[1]


def run_ids(uri: str, version: int | None = None) -> set[str]:
    rows = tables.read_table(uri, version=version, partition_column="ds", start=DAY, end=DAY)
    return set(rows["run_id"].to_pylist())


def test_rerun_time_travel_rollback_sql_read_scores_report_erase_vacuum(
    s3_world, s3_spark, s3_server, tmp_path
):
    platform, job = s3_world.platform, s3_world.job()
    uri = job.output.table

    first = score_partition(job, DAY, platform=platform, spark=s3_spark)
    second = score_partition(job, DAY, platform=platform, spark=s3_spark)
    # a rerun replaces the partition: same rows, the second run's only
    latest = tables.read_table(uri, partition_column="ds", start=DAY, end=DAY)
    assert latest.num_rows == ROWS_PER_DAY
    assert run_ids(uri) == {second.run_id}
    # time travel: the first publish is still readable at its version
    assert run_ids(uri, first.output_version) == {first.run_id}

    # rollback to the first publish: a new commit (delta-rs) with the first run's rows
    rolled = rollback_to_version(
        job, DAY, first.output_version, platform=platform, reason="s3 test", spark=s3_spark
    )
    assert rolled.output_version == tables.table_version(uri) > second.output_version
    assert run_ids(uri) == {first.run_id}
    (entry,) = tables.history(uri, 1)
    assert entry["lakescore"]["action"] == "rollback"

    # the analyst side: read_scores and SQL over the S3 tables (no JVM, no download)
    scores = api.read_scores("churn", DAY, DAY, conf_dir=s3_world.conf_dir)
    assert scores.num_rows == ROWS_PER_DAY
    (count, runs), *_ = api.sql(
        f"select count(*), count(distinct run_id) from scores_churn where ds = DATE '{DAY}'",
        platform,
    ).fetchall()
    assert (count, runs) == (ROWS_PER_DAY, 1)
    (succeeded,) = api.sql(
        f"select count(*) from lineage where status = 'succeeded' and run_id = '{second.run_id}'",
        platform,
    ).fetchone()
    assert succeeded == 1

    # the report reads lineage and metrics from S3 and is written on local disk
    page = write_job_report(platform, "churn")
    assert page.is_file() and second.run_id in page.read_text()

    # erase two customers everywhere, then vacuum with retention 0: the rows are gone from the
    # table, and the files that still held them are deleted from the bucket
    erased = [7, 42]
    entities = tmp_path / "erase.csv"
    entities.write_text("customer_id\n" + "\n".join(map(str, erased)) + "\n")
    files_before = set(s3_server.keys(BUCKET, "wh/scores/churn/"))
    no_retention = platform.model_copy(
        update={"governance": GovernanceSpec(erasure_retention=timedelta(0))}
    )
    result = erase(
        no_retention, entities, reason="s3 test", jobs=["churn"], vacuum_after=True, spark=s3_spark
    )
    (scores_erasure,) = [t for t in result.tables if t.kind == "predictions"]
    published_days = tables.read_table(uri)["ds"].unique().to_pylist()
    assert scores_erasure.rows_deleted == len(erased) * len(published_days)
    after = tables.read_table(uri)
    assert not pc.any(pc.is_in(after["customer_id"], value_set=pc.cast(erased, "int64"))).as_py()
    (vacuumed,) = [v for v in result.vacuum if v["kind"] == "predictions"]
    assert vacuumed["files_deleted"] > 0
    files_after = set(s3_server.keys(BUCKET, "wh/scores/churn/"))
    gone = {k for k in files_before - files_after if k.endswith(".parquet")}
    assert len(gone) == vacuumed["files_deleted"]
