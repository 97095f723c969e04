"""The scoring run end to end: real Spark + Delta jars, real MLflow registry, real Delta tables.

What Spark published is checked with delta-rs (and DuckDB), not with Spark.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake

from lakescore.errors import AuditFailure, BadInputError
from lakescore.lakehouse import tables
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, World, commit_empty_partition, lineage_rows

pytestmark = pytest.mark.integration


def published(world: World, day: date, version: int | None = None) -> pa.Table:
    job = world.job()
    return tables.read_table(
        job.output.table, version=version, partition_column="ds", start=day, end=day
    )


def output_version(world: World) -> int | None:
    return tables.table_version(world.job().output.table)


def test_happy_path_publishes_one_row_per_entity_with_model_and_lineage(world, spark):
    job = world.job()
    result = score_partition(job, DAYS[0], platform=world.platform, spark=spark)

    rows = published(world, DAYS[0])
    assert rows.num_rows == ROWS_PER_DAY
    assert pc.count_distinct(rows["customer_id"]).as_py() == ROWS_PER_DAY
    assert set(rows["model_name"].to_pylist()) == {world.model_name}
    assert set(rows["model_version"].to_pylist()) == {world.model_v1}
    assert set(rows["run_id"].to_pylist()) == {result.run_id}
    assert set(rows["ds"].to_pylist()) == {DAYS[0]}
    scores = rows["score"].to_numpy()
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1
    assert rows.schema.field("scored_at").type == pa.timestamp("us", tz="UTC")

    (lineage,) = lineage_rows(world, run_id=result.run_id)
    assert lineage["status"] == "succeeded"
    assert lineage["job"] == "churn" and lineage["ds"] == DAYS[0]
    assert lineage["input_table"] == job.features.table
    assert lineage["input_version"] == tables.table_version(job.features.table)
    assert lineage["input_rows"] == ROWS_PER_DAY
    assert lineage["output_rows"] == ROWS_PER_DAY
    assert lineage["output_version"] == result.output_version == output_version(world)
    assert lineage["model_name"] == world.model_name
    assert lineage["model_version"] == world.model_v1
    assert lineage["model_alias"] == "champion"
    assert lineage["spark_app_id"] == spark.sparkContext.applicationId
    assert lineage["executor_seconds"] and lineage["executor_seconds"] > 0
    assert lineage["rows_per_s"] and lineage["rows_per_s"] > 0
    assert dict(lineage["stage_seconds"])["score"] > 0

    (commit,) = [
        h for h in tables.history(job.output.table) if h["version"] == result.output_version
    ]
    meta = commit["lakescore"]
    assert meta["lakescore_run_id"] == result.run_id
    assert meta["model_version"] == world.model_v1
    assert meta["input_version"] == lineage["input_version"]
    # one overwrite of that partition only, named in the commit metadata
    assert commit["operationParameters"]["mode"] == "Overwrite"
    assert meta["replaced"] == "`ds` = DATE '2026-11-18'" and meta["ds"] == "2026-11-18"


def test_score_is_probability_of_the_configured_positive_class(world, spark):
    import mlflow.sklearn

    from lakescore.local.demo import FEATURES
    from lakescore.ml.models import configure_mlflow

    job = world.job()
    score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    scores = published(world, DAYS[1]).sort_by("customer_id")
    features = tables.read_table(
        job.features.table, partition_column="ds", start=DAYS[1], end=DAYS[1]
    ).sort_by("customer_id")
    assert scores["customer_id"].equals(features["customer_id"])

    configure_mlflow(world.platform)
    model = mlflow.sklearn.load_model(f"models:/{world.model_name}/{world.model_v1}")
    matrix = np.column_stack([features[c].to_numpy() for c in FEATURES])
    expected = model.predict_proba(matrix)[:, list(model.classes_).index(1)]
    got = scores["score"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # and it is not the P(class 0) column the usual spark_udf recipe returns
    assert np.abs(got - model.predict_proba(matrix)[:, 0]).max() > 0.1


def test_rerun_replaces_only_that_day_and_keeps_time_travel(world, spark):
    job = world.job()
    first = score_partition(job, DAYS[2], platform=world.platform, spark=spark)
    other_day_before = published(world, DAYS[0]).sort_by("customer_id")
    second = score_partition(job, DAYS[2], platform=world.platform, spark=spark)

    assert second.output_version == first.output_version + 1
    rows = published(world, DAYS[2])
    assert rows.num_rows == ROWS_PER_DAY
    assert pc.count_distinct(rows["customer_id"]).as_py() == ROWS_PER_DAY
    assert set(rows["run_id"].to_pylist()) == {second.run_id}
    assert published(world, DAYS[0]).sort_by("customer_id").equals(other_day_before)
    old = published(world, DAYS[2], version=first.output_version)
    assert set(old["run_id"].to_pylist()) == {first.run_id}
    assert old.num_rows == ROWS_PER_DAY


def test_same_run_retried_does_not_publish_twice(world, spark):
    job = world.job()
    first = score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    again = score_partition(
        job,
        DAYS[0],
        platform=world.platform,
        spark=spark,
        run_id=first.run_id,
        txn_version=int(first_txn(world, first.run_id)),
    )
    assert again.output_version == first.output_version
    assert output_version(world) == first.output_version


def first_txn(world: World, run_id: str) -> int:
    (row,) = [r for r in lineage_rows(world, run_id=run_id) if r["status"] == "succeeded"]
    return int(row["started_at"].timestamp() * 1000)


def test_an_older_run_cannot_overwrite_a_newer_publish(world, spark):
    from lakescore.errors import PublishConflict

    job = world.job()
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    before = output_version(world)
    with pytest.raises(PublishConflict, match="newer run already published"):
        score_partition(job, DAYS[0], platform=world.platform, spark=spark, txn_version=1)
    assert output_version(world) == before


def test_alias_move_and_pinned_version(world, spark):
    from mlflow import MlflowClient

    from lakescore.local.demo import train_and_register

    job = world.job()
    v2 = train_and_register(
        world.platform, world.model_name, rows=6_000, max_iter=10, seed=99, force_new_version=True
    ).version
    try:
        assert v2 != world.model_v1
        moved = score_partition(job, DAYS[1], platform=world.platform, spark=spark)
        assert moved.model_version == v2
        assert set(published(world, DAYS[1])["model_version"].to_pylist()) == {v2}

        pinned = score_partition(
            job, DAYS[1], platform=world.platform, spark=spark, model_version=world.model_v1
        )
        assert pinned.model_version == world.model_v1
        assert set(published(world, DAYS[1])["model_version"].to_pylist()) == {world.model_v1}
        versions = {r["model_version"] for r in lineage_rows(world, ds=DAYS[1], status="succeeded")}
        assert {world.model_v1, v2} <= versions
    finally:
        MlflowClient().set_registered_model_alias(world.model_name, "champion", str(world.model_v1))


def test_audit_failure_publishes_nothing_and_is_in_lineage(world, spark):
    score_partition(world.job(), DAYS[0], platform=world.platform, spark=spark)
    before = output_version(world)
    world.write_job(
        "churn_strict",
        f"""\
        name: churn_strict
        model: {{name: {world.model_name}, alias: champion}}
        features: {{table: features/churn, entity_keys: [customer_id]}}
        output: {{table: scores/churn}}
        audit: {{score_min: 0.0, score_max: 0.001}}
        """,
    )
    with pytest.raises(AuditFailure, match="scores outside the allowed range"):
        score_partition(world.job("churn_strict"), DAYS[0], platform=world.platform, spark=spark)
    assert output_version(world) == before
    failed = lineage_rows(world, job="churn_strict", status="failed")
    assert failed[-1]["error_class"] == "AuditFailure"
    assert "nothing published" in failed[-1]["error"]
    staging = world.root / "warehouse" / "_staging" / "churn_strict"
    assert not any(p.is_file() for p in staging.rglob("*")), "staged files left behind"


# --------------------------------------------------------------------------- bad input


def _assert_nothing_published(world: World, before: int | None) -> None:
    assert output_version(world) == before


def test_missing_partition_is_a_clear_error(world, spark):
    before = output_version(world)
    with pytest.raises(BadInputError) as err:
        score_partition(world.job(), "2026-10-01", platform=world.platform, spark=spark)
    assert "partition ds=2026-10-01 not found" in str(err.value)
    assert "job 'churn'" in str(err.value)
    _assert_nothing_published(world, before)
    assert lineage_rows(world, ds=date(2026, 10, 1))[-1]["error_class"] == "BadInputError"


def test_malformed_and_impossible_dates_fail_before_anything(world, spark):
    before = output_version(world)
    for bad in ["2026-13-01", "yesterday", "2026-01-01' OR '1'='1"]:
        with pytest.raises(BadInputError, match="partition date"):
            score_partition(world.job(), bad, platform=world.platform, spark=spark)
    _assert_nothing_published(world, before)


def test_unknown_job(world):
    from lakescore.config import load_job

    with pytest.raises(BadInputError, match=r"unknown job .*known jobs: .*\bchurn\b"):
        load_job("nope", platform=world.platform)


@pytest.mark.parametrize(
    ("model_yaml", "message"),
    [
        ("{name: no_such_model, alias: champion}", "model 'no_such_model' is not in the registry"),
        ("{name: MODEL, alias: nonexistent}", "has no alias 'nonexistent'"),
        ("{name: MODEL, version: 999}", "has no version 999"),
    ],
)
def test_unknown_model_alias_or_version(world, spark, model_yaml, message):
    before = output_version(world)
    world.write_job(
        "churn_badmodel",
        f"""\
        name: churn_badmodel
        model: {model_yaml.replace("MODEL", world.model_name)}
        features: {{table: features/churn, entity_keys: [customer_id]}}
        output: {{table: scores/churn}}
        """,
    )
    with pytest.raises(BadInputError, match=message):
        score_partition(world.job("churn_badmodel"), DAYS[0], platform=world.platform, spark=spark)
    _assert_nothing_published(world, before)


def _write_variant_features(world: World, name: str, transform) -> None:
    """A copy of the feature table with one change, registered as job ``name``."""
    from deltalake import write_deltalake

    source = tables.read_table(world.job().features.table)
    write_deltalake(
        str(world.root / "warehouse" / "features" / name),
        transform(source),
        partition_by=["ds"],
        mode="overwrite",
    )
    world.write_job(
        name,
        f"""\
        name: {name}
        model: {{name: {world.model_name}, alias: champion}}
        features: {{table: features/{name}, entity_keys: [customer_id]}}
        output: {{table: scores/{name}}}
        """,
    )


def test_feature_column_missing_is_named(world, spark):
    _write_variant_features(world, "churn_nocol", lambda t: t.drop_columns(["nps_score"]))
    with pytest.raises(BadInputError) as err:
        score_partition(world.job("churn_nocol"), DAYS[0], platform=world.platform, spark=spark)
    assert "column 'nps_score'" in str(err.value) and "missing" in str(err.value)
    assert not tables.table_exists(world.job("churn_nocol").output.table)


def test_feature_column_mistyped_is_named(world, spark):
    def to_string(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("logins_30d")
        return t.set_column(i, "logins_30d", t["logins_30d"].cast(pa.string()))

    _write_variant_features(world, "churn_badtype", to_string)
    with pytest.raises(BadInputError) as err:
        score_partition(world.job("churn_badtype"), DAYS[0], platform=world.platform, spark=spark)
    assert "logins_30d is string, model expects double" in str(err.value)
    assert not tables.table_exists(world.job("churn_badtype").output.table)


def test_empty_partition_fails_or_publishes_empty_by_config(world, spark):
    _write_variant_features(world, "churn_empty", lambda t: t)
    job = world.job("churn_empty")
    empty_day = date(2026, 11, 21)
    commit_empty_partition(
        job.features.table, "ds", empty_day, tables.read_table(job.features.table).schema
    )
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    before = tables.table_version(job.output.table)

    with pytest.raises(BadInputError, match="is empty"):
        score_partition(job, empty_day, platform=world.platform, spark=spark)
    assert tables.table_version(job.output.table) == before

    world.write_job(
        "churn_empty",
        f"""\
        name: churn_empty
        model: {{name: {world.model_name}, alias: champion}}
        features: {{table: features/churn_empty, entity_keys: [customer_id]}}
        output: {{table: scores/churn_empty, on_empty_partition: publish_empty}}
        """,
    )
    result = score_partition(
        world.job("churn_empty"), empty_day, platform=world.platform, spark=spark
    )
    assert result.rows == 0
    assert tables.table_version(job.output.table) == before + 1
    assert published_rows(job.output.table, empty_day) == 0
    assert published_rows(job.output.table, DAYS[0]) == ROWS_PER_DAY


def published_rows(uri: str, day: date) -> int:
    return tables.read_table(uri, partition_column="ds", start=day, end=day).num_rows


# --------------------------------------------------------------------------- readers


def test_independent_readers_agree_with_spark(world, spark):
    from lakescore.api import connect, read_scores

    job = world.job()
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    by_spark = {
        (r["customer_id"], r["score"])
        for r in spark.read.format("delta")
        .load(job.output.table)
        .where("ds = DATE'2026-11-18'")
        .collect()
    }
    arrow = read_scores("churn", DAYS[0], DAYS[0], conf_dir=world.conf_dir)
    by_delta_rs = set(
        zip(arrow["customer_id"].to_pylist(), arrow["score"].to_pylist(), strict=True)
    )
    duck = (
        connect(world.platform)
        .sql("select customer_id, score from scores_churn where ds = DATE '2026-11-18'")
        .fetchall()
    )
    assert len(by_spark) == ROWS_PER_DAY
    assert by_spark == by_delta_rs == set(duck)


def test_a_first_publish_that_meets_another_runs_table_creation_waits_for_it(world, spark):
    """The race of two first runs: one run's log folder exists but its first commit is not
    written yet when the other creates the table (Delta refuses a non-empty location). The
    loser waits for the winner's commit and publishes into that table."""
    import threading

    from lakescore.lakehouse import layout
    from lakescore.run.publish import ensure_prediction_table as _ensure_prediction_table

    world.variant_job("first_race", lambda t: t)
    job = world.job("first_race")
    keys = [tables.table_schema(job.features.table).field("customer_id")]
    log = Path(job.output.table) / "_delta_log"
    log.mkdir(parents=True)  # the winner, between creating its log folder and committing
    (log / "in-flight.tmp").write_text("")
    winner = threading.Timer(
        1.5,
        lambda: write_deltalake(
            job.output.table,
            layout.prediction_schema(keys, "ds").empty_table(),
            partition_by=["ds"],
            mode="append",
        ),
    )
    winner.start()
    try:
        _ensure_prediction_table(spark, job, keys)
    finally:
        winner.join()
    assert tables.table_version(job.output.table) == 0  # the winner's table, not another

    result = score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    assert result.status == "succeeded" and result.output_version == 1


def _spoil_later_days(table: pa.Table) -> pa.Table:
    """Day 2: monthly_charges = +inf in 3 rows; day 3: customer_id 1 five times."""
    charges = table["monthly_charges"].to_pylist()
    keys = table["customer_id"].to_pylist()
    seen = {DAYS[1]: 0, DAYS[2]: 0}
    for i, day in enumerate(table["ds"].to_pylist()):
        if day in seen:
            if day == DAYS[1] and seen[day] < 3:
                charges[i] = float("inf")
            if day == DAYS[2] and seen[day] < 5:
                keys[i] = 1
            seen[day] += 1
    table = table.set_column(
        table.schema.get_field_index("monthly_charges"),
        "monthly_charges",
        pa.array(charges, table.schema.field("monthly_charges").type),
    )
    return table.set_column(
        table.schema.get_field_index("customer_id"),
        "customer_id",
        pa.array(keys, table.schema.field("customer_id").type),
    )


def test_refusals_after_the_first_publish_name_the_problem_and_leave_no_files(world, spark):
    """Once the table exists the scoring pass writes into the table's folder (the commit
    path): a refused partition still names column and count, publishes nothing and leaves
    no run folder behind."""
    world.variant_job("direct_refusals", _spoil_later_days, "validation: {enabled: false}\n")
    job = world.job("direct_refusals")
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    before = tables.table_version(job.output.table)
    folders_before = sorted(Path(job.output.table).glob("ds=*/lakescore-*"))

    with pytest.raises(BadInputError, match="column 'monthly_charges' has 3 infinite values"):
        score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    with pytest.raises(BadInputError, match="has 4 duplicate entity keys"):
        score_partition(job, DAYS[2], platform=world.platform, spark=spark)

    assert tables.table_version(job.output.table) == before
    assert sorted(Path(job.output.table).glob("ds=*/lakescore-*")) == folders_before
    failed = [r for r in lineage_rows(world, job="direct_refusals") if r["status"] == "failed"]
    assert [json.loads(r["details"])["publish_path"] for r in failed] == ["commit", "commit"]
