"""The pyarrow-in-the-task reader (lakescore.ml.file_scoring): it reads exactly the files the
Delta log lists for the partition at the pinned version, scores them like the model's own
``predict_proba``, and refuses tables it cannot honour (deletion vectors)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow.compute as pc
import pytest

from lakescore.lakehouse import tables
from lakescore.ml.file_scoring import plan_partition_read, score_partition_files
from lakescore.ml.models import (
    ModelScorer,
    ScorerSpec,
    download_model,
    resolve_model_version,
)
from lakescore.ml.scoring import ModelSlot
from tests.conftest import DAYS, ROWS_PER_DAY

pytestmark = pytest.mark.integration


def _plan(world, day: date, min_tasks: int = 2):
    job = world.job()
    version = tables.table_version(job.features.table)
    model = resolve_model_version(world.platform, job.model)
    plan = plan_partition_read(
        job.features.table,
        "ds",
        day,
        version,
        ["customer_id"],
        model.feature_columns,
        min_tasks=min_tasks,
    )
    return job, model, plan


def test_plan_lists_the_partitions_files_and_splits_them_by_row_group(world):
    _, _, plan = _plan(world, DAYS[1], min_tasks=3)
    assert plan is not None
    assert plan.rows == ROWS_PER_DAY
    assert all(f"ds={DAYS[1].isoformat()}" in unit.path for unit in plan.units)
    # The fixture writes 1,000-row row groups: 3 units for 3 tasks, covering each group once.
    groups = sorted(g for unit in plan.units for g in unit.row_groups or ())
    assert len(plan.units) == 3
    assert groups == [0, 1, 2]


def test_scores_equal_the_models_own_predict_proba_row_by_row(world, spark):
    job, model, plan = _plan(world, DAYS[2])
    model_dir = download_model(world.platform, model, job=job.name)
    features = model.feature_columns
    slot = ModelSlot.of(model, str(model_dir), features)
    scored = score_partition_files(spark, plan, [slot], ["customer_id"])
    assert scored.rdd.getNumPartitions() == len(plan.units)
    got = scored.toArrow().sort_by("customer_id")

    source = tables.read_table(
        job.features.table, partition_column="ds", start=DAYS[2], end=DAYS[2]
    ).sort_by("customer_id")
    assert got.num_rows == source.num_rows == ROWS_PER_DAY
    assert got["customer_id"].equals(source["customer_id"])
    matrix = np.column_stack([source[c].to_numpy() for c in features])
    import mlflow.sklearn

    expected = mlflow.sklearn.load_model(str(model_dir)).predict_proba(matrix)[:, 1]
    np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    assert pc.min(got["score"]).as_py() >= 0.0


def test_scorer_slices_large_arrays_without_changing_a_score(world):
    job = world.job()
    model = resolve_model_version(world.platform, job.model)
    model_dir = str(download_model(world.platform, model, job=job.name))
    rng = np.random.default_rng(0)
    matrix = np.asfortranarray(rng.gamma(2.0, 10.0, (2_500, len(model.feature_columns))))
    scorer = ModelScorer(model_dir, ScorerSpec.of(model))
    whole = scorer.score(matrix).score
    scorer.slice_rows = 700  # 4 slices, the last one short
    np.testing.assert_array_equal(scorer.score(matrix).score, whole)
    assert whole.shape == (2_500,)


def test_a_table_with_deletion_vectors_is_refused(world, spark, tmp_path):
    from pyspark.sql import functions as F

    uri = str(tmp_path / "dv_table")
    rows = spark.range(100).select(
        F.col("id").alias("customer_id"),
        F.rand(1).alias("x"),
        F.lit(DAYS[0]).cast("date").alias("ds"),
    )
    rows.write.format("delta").partitionBy("ds").option("delta.enableDeletionVectors", "true").save(
        uri
    )
    spark.sql(f"DELETE FROM delta.`{uri}` WHERE customer_id < 10")
    version = tables.table_version(uri)
    plan = plan_partition_read(uri, "ds", DAYS[0], version, ["customer_id"], ["x"], min_tasks=2)
    assert plan is None


def test_a_run_without_validation_scores_through_the_files_and_publishes_exact_scores(world, spark):
    import json

    import mlflow.sklearn

    from lakescore.quality.monitoring import QUANTILES
    from lakescore.run import score_partition
    from tests.conftest import lineage_rows

    world.write_job(
        "churn_files",
        f"""\
        name: churn_files
        model: {{name: {world.model_name}, alias: champion}}
        features: {{table: features/churn, entity_keys: [customer_id]}}
        output: {{table: scores/churn_files}}
        validation: {{enabled: false}}
        """,
    )
    job = world.job("churn_files")
    result = score_partition(job, DAYS[1], platform=world.platform, spark=spark)

    (row,) = lineage_rows(world, run_id=result.run_id)
    assert json.loads(row["details"])["score_reader"] == "files"
    published = tables.read_table(
        job.output.table, partition_column="ds", start=DAYS[1], end=DAYS[1]
    ).sort_by("customer_id")
    source = tables.read_table(
        job.features.table, partition_column="ds", start=DAYS[1], end=DAYS[1]
    ).sort_by("customer_id")
    assert published["customer_id"].equals(source["customer_id"])
    model = resolve_model_version(world.platform, job.model)
    matrix = np.column_stack([source[c].to_numpy() for c in model.feature_columns])
    model_dir = str(download_model(world.platform, model, job=job.name))
    expected = mlflow.sklearn.load_model(model_dir).predict_proba(matrix)[:, 1]
    np.testing.assert_allclose(published["score"].to_numpy(), expected, rtol=0, atol=1e-12)

    # Once the table exists, the tasks write the published files themselves (pyarrow) and
    # delta-rs commits them: delta-spark reads them, and their scored_at stats (which
    # Spark's INT96 timestamps never had) skip files correctly.
    second = score_partition(job, DAYS[2], platform=world.platform, spark=spark)
    (row,) = lineage_rows(world, run_id=second.run_id)
    details = json.loads(row["details"])
    assert (details["publish_path"], details["score_writer"]) == ("commit", "python")
    # the feature files hold each day's keys in increasing order, which proves them distinct
    # without the audit counting them (a duplicate is counted: test_score_partition)
    assert details["audit"]["distinct_keys"] == "key order"
    day = tables.read_table(job.output.table, partition_column="ds", start=DAYS[2], end=DAYS[2])
    assert day.num_rows == ROWS_PER_DAY
    assert set(day["run_id"].to_pylist()) == {second.run_id}
    assert set(day["model_version"].to_pylist()) == {int(model.version)}
    (scored_at,) = set(day["scored_at"].to_pylist())
    from pyspark.sql import functions as F

    table = spark.read.format("delta").load(job.output.table)
    at = table.where(F.col("scored_at") == F.lit(scored_at))
    assert at.count() == ROWS_PER_DAY
    assert at.select(F.sum("score")).first()[0] == pytest.approx(
        float(pc.sum(day["score"]).as_py())
    )
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(job.output.table).get_add_actions(flatten=True))
    mine = actions.filter(pc.starts_with(actions["path"], f"ds={DAYS[2].isoformat()}/"))
    assert mine["min.scored_at"].null_count == 0  # files can be skipped by time

    # the drift metrics of the run: exact lower quantiles and the histogram of the scores
    (metrics,) = [
        m
        for m in tables.read_table(world.platform.metrics_table).to_pylist()
        if m["run_id"] == second.run_id
    ]
    scores = np.sort(day["score"].to_numpy())
    quantiles = dict(metrics["quantiles"])
    assert sorted(map(float, quantiles)) == list(QUANTILES)
    for q, value in quantiles.items():
        assert value == scores[int(np.floor(float(q) * (len(scores) - 1)))], q
    assert metrics["bin_counts"] == np.histogram(scores, np.linspace(0, 1, 11))[0].tolist()
    assert metrics["mean"] == pytest.approx(float(scores.mean()), rel=1e-12)


def test_tasks_write_their_own_files_whose_rows_and_sums_match_spark(world, spark, tmp_path):
    """write_partition_files: each task writes its scores as a file and returns the audit's
    partial sums. The folder ends up holding exactly the successful attempts' files (a lost
    attempt's leftovers are removed), the files hold the scores score_partition_files gives,
    and the merged sums equal Spark's own aggregates over those scores."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakescore.ml.file_scoring import FileOutput, write_partition_files
    from lakescore.ml.scoring import audit_expressions
    from lakescore.quality.monitoring import distribution_expressions

    job, model, plan = _plan(world, DAYS[2], min_tasks=3)
    model_dir = download_model(world.platform, model, job=job.name)
    slot = ModelSlot.of(model, str(model_dir), model.feature_columns)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "part-00009-0-lost.parquet").write_bytes(b"a lost attempt's file")
    (folder / ".part-00009-1-lost.parquet.inprogress").write_bytes(b"half written")
    schema = pa.schema(
        [
            ("customer_id", plan.key_types["customer_id"]),
            ("score", pa.float64()),
            ("model_name", pa.string()),
            ("run_id", pa.string()),
        ]
    )
    output = FileOutput(
        folder=str(folder),
        schema=schema,
        constants={"model_name": model.name, "run_id": "run-1"},
        low=0.0,
        high=0.5,  # some scores fall above: the out-of-range count is not trivially 0
        bins=8,
    )

    written = write_partition_files(spark, plan, [slot], ["customer_id"], [output])

    (files,) = written.files
    assert sorted(p.name for p in folder.iterdir()) == files
    # the units go to one task per core: one file each
    assert len(files) == min(len(plan.units), spark.sparkContext.defaultParallelism)
    got = pa.concat_tables(pq.read_table(folder / f) for f in files).sort_by("customer_id")
    assert got.schema == schema
    assert set(got["model_name"].to_pylist()) == {model.name}
    # dictionary pages for the constant columns only (keys and scores are all distinct)
    columns = pq.ParquetFile(folder / files[0]).metadata.row_group(0)
    dictionary = {
        columns.column(i).path_in_schema: columns.column(i).has_dictionary_page
        for i in range(columns.num_columns)
    }
    assert dictionary == {"customer_id": False, "score": False, "model_name": True, "run_id": True}
    want = score_partition_files(spark, plan, [slot], ["customer_id"]).toArrow()
    want = want.sort_by("customer_id")
    assert got["customer_id"].equals(want["customer_id"])
    np.testing.assert_array_equal(got["score"].to_numpy(), want["score"].to_numpy())

    from pyspark.sql import functions as F

    scored = spark.createDataFrame(want.to_pandas()).withColumn(
        "_lakescore_bad_values", F.lit(None).cast("string")
    )
    row = scored.agg(
        *audit_expressions(["customer_id"], score_min=0.0, score_max=0.5, checked=True),
        *distribution_expressions(0.0, 0.5, 8, quantiles=False),
    ).first()
    expected = row.asDict()
    metrics = written.summaries[0].metrics()
    assert expected["audit_oor"] > 0
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-9), name
