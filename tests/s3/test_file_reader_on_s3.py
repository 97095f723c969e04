"""The fast path on S3: the Python tasks read the feature files the Delta log lists straight
from the object store (pyarrow's S3 filesystem, the platform's endpoint) and the published
scores are exactly the model's own; on S3 Spark writes the published files (the tasks write
them only on a local table) and delta-rs commits them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakescore.lakehouse import tables
from lakescore.ml.models import download_model, resolve_model_version
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY

pytestmark = pytest.mark.integration


def test_files_reader_on_s3_publishes_the_models_exact_scores(s3_world, s3_spark):
    import mlflow.sklearn

    s3_world.write_job(
        "churn_files",
        f"""\
        name: churn_files
        model: {{name: {s3_world.model_name}, alias: champion}}
        features: {{table: features/churn, entity_keys: [customer_id]}}
        output: {{table: scores/churn_files}}
        validation: {{enabled: false}}
        """,
    )
    job = s3_world.job("churn_files")
    assert job.features.table.startswith("s3://") and job.output.table.startswith("s3://")
    for day in DAYS[1:2]:
        result = score_partition(job, day, platform=s3_world.platform, spark=s3_spark)
        (row,) = tables.select_rows(
            s3_world.platform.lineage_table, sort_by="started_at", run_id=result.run_id
        )
        details = json.loads(row["details"])
        assert details["score_reader"] == "files", details
        assert details["score_writer"] == "spark", details

        published = tables.read_table(
            job.output.table, partition_column="ds", start=day, end=day
        ).sort_by("customer_id")
        source = tables.read_table(
            job.features.table, partition_column="ds", start=day, end=day
        ).sort_by("customer_id")
        assert published.num_rows == ROWS_PER_DAY
        assert published["customer_id"].equals(source["customer_id"])
        model = resolve_model_version(s3_world.platform, job.model)
        matrix = np.column_stack([source[c].to_numpy() for c in model.feature_columns])
        model_dir = str(download_model(s3_world.platform, model, job=job.name))
        expected = mlflow.sklearn.load_model(model_dir).predict_proba(matrix)[:, 1]
        np.testing.assert_allclose(published["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    # the table's first publish: staged by Spark, rewritten into the run's folder in the table
    # on S3 and committed by delta-rs (a later one writes there straight away: test_score_on_s3)
    assert details["publish_path"] == "staging"
    (commit,) = tables.history(job.output.table, 1)
    assert commit["lakescore"]["lakescore_run_id"] == result.run_id
