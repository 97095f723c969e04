"""A job whose feature table, prediction table, lineage and metrics live on s3:// scores and
publishes end to end against a real S3 API (moto on loopback). What was published is read
back with delta-rs and with boto3's object listing, not with Spark."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from lakescore.lakehouse import tables
from lakescore.ml.models import model_download_uri
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY
from tests.s3.conftest import BUCKET

pytestmark = pytest.mark.integration


def test_feature_and_output_tables_are_on_s3(s3_world, s3_server):
    job = s3_world.job()
    assert job.features.table == f"s3://{BUCKET}/wh/features/churn"
    assert job.output.table == f"s3://{BUCKET}/wh/scores/churn"
    assert s3_world.platform.lineage_table.startswith(f"s3://{BUCKET}/wh/")
    # the feature table really is in the bucket (log + data files), nothing on local disk
    keys = s3_server.keys(BUCKET, "wh/features/churn/")
    assert "wh/features/churn/_delta_log/00000000000000000000.json" in keys
    assert any(k.endswith(".parquet") for k in keys)
    assert tables.partition_info(job.features.table, "ds", DAYS[0]).rows == ROWS_PER_DAY


def test_score_publishes_partition_lineage_and_commit_on_s3(s3_world, s3_spark, s3_server):
    job = s3_world.job()
    result = score_partition(job, DAYS[0], platform=s3_world.platform, spark=s3_spark)

    rows = tables.read_table(job.output.table, partition_column="ds", start=DAYS[0], end=DAYS[0])
    assert rows.num_rows == ROWS_PER_DAY
    assert pc.count_distinct(rows["customer_id"]).as_py() == ROWS_PER_DAY
    assert set(rows["run_id"].to_pylist()) == {result.run_id}
    scores = rows["score"].to_numpy()
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1

    # one commit, carrying the run's metadata, made by delta-rs (conditional PUT on S3)
    (latest,) = tables.history(job.output.table, 1)
    assert latest["lakescore"]["lakescore_run_id"] == result.run_id
    assert latest["version"] == result.output_version
    assert "delta-rs" in str(latest.get("clientVersion") or latest.get("engineInfo") or "")

    # the published files are in the bucket under the partition's run folder
    day_prefix = f"wh/scores/churn/ds={DAYS[0].isoformat()}/"
    data = [k for k in s3_server.keys(BUCKET, day_prefix) if k.endswith(".parquet")]
    assert data and all(f"lakescore-{result.run_id}/" in k for k in data)
    # no Spark side files were committed or left
    assert not [k for k in s3_server.keys(BUCKET, day_prefix) if "/_" in k]

    lineage = tables.select_rows(
        s3_world.platform.lineage_table, sort_by="started_at", run_id=result.run_id
    )
    assert [r["status"] for r in lineage] == ["succeeded"]
    assert lineage[0]["output_table"] == job.output.table
    assert lineage[0]["output_version"] == result.output_version
    # the model's artifacts are in the bucket too, and that is where the run loaded them from
    where = model_download_uri(s3_world.platform, s3_world.model_name, result.model_version)
    assert where.startswith(f"s3://{BUCKET}/mlflow-artifacts/"), where
    assert any(k.endswith("MLmodel") for k in s3_server.keys(BUCKET, "mlflow-artifacts/"))
    # staging and run markers stay on local disk, never as junk keys in the bucket
    assert not s3_server.keys(BUCKET, "wh/_staging")
