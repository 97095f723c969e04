"""Champion/challenger (shadow) scoring and promote, end to end: real Spark + Delta jars, a real
MLflow registry with several versions, real Delta tables (checked with delta-rs, not Spark).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from lakescore.errors import BadInputError
from lakescore.lakehouse import tables
from lakescore.quality.monitoring import psi
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration

JOB = "shadowjob"
MODEL = "churn_shadow"


@dataclass
class Registry:
    champion: int  # v1
    challenger: int  # v2 (alias "challenger")
    narrow: int  # v3: fewer features in its signature (alias "narrow")


def _write_job(world: World, challengers: str, extra: str = "") -> None:
    world.write_job(
        JOB,
        f"name: {JOB}\n"
        f"model:\n  name: {MODEL}\n  alias: champion\n  challengers: {challengers}\n"
        f"features: {{table: features/{JOB}, entity_keys: [customer_id]}}\n"
        f"output: {{table: scores/{JOB}}}\n"
        "monitoring: {psi_fail: null}\n" + extra,
    )


def _register_narrow(world: World) -> int:
    """A logistic regression on three of the features, registered with alias ``narrow``."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from lakescore.local.demo import FEATURES, generate_customers
    from lakescore.ml.models import configure_mlflow

    configure_mlflow(world.platform)
    data = generate_customers(2_000, 5)
    cols = list(FEATURES[:3])
    X = pd.DataFrame({c: data[c] for c in cols})
    model = LogisticRegression(max_iter=200).fit(X, data["churned"])
    with mlflow.start_run(run_name="narrow"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X.head(), model.predict_proba(X.head())),
            registered_model_name=MODEL,
            pip_requirements=["scikit-learn"],
        )
    version = int(info.registered_model_version)
    MlflowClient().set_registered_model_alias(MODEL, "narrow", str(version))
    return version


@pytest.fixture(scope="module")
def registry(world: World) -> Registry:
    from lakescore.local.demo import train_and_register

    world.variant_job(JOB, lambda t: t)
    v1 = train_and_register(world.platform, MODEL, rows=4_000, max_iter=15, seed=3).version
    v2 = train_and_register(
        world.platform,
        MODEL,
        alias="challenger",
        rows=4_000,
        max_iter=8,
        seed=21,
        force_new_version=True,
    ).version
    return Registry(v1, v2, _register_narrow(world))


def _set_champion(world: World, version: int) -> None:
    from mlflow import MlflowClient

    from lakescore.ml.models import configure_mlflow

    configure_mlflow(world.platform)
    MlflowClient().set_registered_model_alias(MODEL, "champion", str(version))


def _partition(uri: str, day: date) -> pa.Table:
    rows = tables.read_table(uri, partition_column="ds", start=day, end=day)
    return rows.sort_by("customer_id")


def _predict(world: World, version: int, features: pa.Table) -> np.ndarray:
    """The model's own predict_proba(P(class 1)) on the feature rows, outside Spark."""
    import mlflow.sklearn

    from lakescore.local.demo import FEATURES
    from lakescore.ml.models import configure_mlflow

    configure_mlflow(world.platform)
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
    X = np.column_stack([features[c].to_numpy() for c in FEATURES])
    return model.predict_proba(X)[:, list(model.classes_).index(1)]


def test_shadow_scores_both_tables_in_one_read_and_records_the_comparison(world, spark, registry):
    _set_champion(world, registry.champion)
    _write_job(world, "[{alias: challenger}, {alias: no_such_alias}]")
    job = world.job(JOB)
    day = DAYS[0]

    result = score_partition(job, day, platform=world.platform, spark=spark)

    details = _both_tables_published_and_compared(world, job, result, registry, day)
    # validation (Great Expectations) read the partition through Spark; both models scored
    # it in one pass of the file reader (pyarrow in the tasks, no Spark scan)
    (lineage,) = lineage_rows(world, run_id=result.run_id)
    assert details["score_reader"] == "files"
    assert lineage["validation_status"] == "passed"


def test_without_validation_the_tasks_write_both_tables_files_themselves(world, spark, registry):
    """The file reader's path: the scoring tasks write the champion's files into the
    prediction table's folder and the challenger's into the shadow table's, return the
    comparison's partial sums, and two delta-rs commits publish them. Same tables, same
    scores, same comparison as the staging path."""
    _set_champion(world, registry.champion)
    _write_job(
        world, "[{alias: challenger}, {alias: no_such_alias}]", "validation: {enabled: false}\n"
    )
    job = world.job(JOB)
    day = DAYS[1]
    # the first publish of each table takes the staging path; this run the direct one
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)

    result = score_partition(job, day, platform=world.platform, spark=spark)

    details = _both_tables_published_and_compared(world, job, result, registry, day)
    assert (details["publish_path"], details["score_writer"]) == ("commit", "python")
    folder = tables.run_folder(job.shadow_table, "ds", day, result.run_id)
    shadow_files = {a["path"] for a in _add_actions(job.shadow_table)}
    assert all(
        f"lakescore-{result.run_id}/" in p
        for p in shadow_files
        if p.startswith("ds=" + day.isoformat())
    )
    assert sorted(os.listdir(folder)) == sorted(
        p.rsplit("/", 1)[1] for p in shadow_files if p.startswith("ds=" + day.isoformat())
    )


def _add_actions(uri: str) -> list[dict]:
    from deltalake import DeltaTable

    return pa.table(DeltaTable(uri).get_add_actions(flatten=True)).to_pylist()


def _both_tables_published_and_compared(world, job, result, registry, day) -> dict:
    """The champion's scores in the prediction table, the challenger's in the shadow table,
    each its model's own predict_proba, and the comparison in lineage and the metrics table
    as numpy computes it from the published scores. Returns lineage ``details``."""
    # champion -> prediction table, unchanged layout, champion version only
    scores = _partition(job.output.table, day)
    assert scores.num_rows == ROWS_PER_DAY
    assert "role" not in scores.column_names
    assert set(scores["model_version"].to_pylist()) == {registry.champion}
    # challenger -> shadow table: same layout + role + model_reference
    shadow = _partition(job.shadow_table, day)
    assert job.shadow_table == job.output.table + "_shadow"
    assert shadow.num_rows == ROWS_PER_DAY
    assert set(shadow["role"].to_pylist()) == {"challenger"}
    assert set(shadow["model_version"].to_pylist()) == {registry.challenger}
    assert set(shadow["model_reference"].to_pylist()) == {f"{MODEL}@challenger"}
    assert set(shadow["run_id"].to_pylist()) == {result.run_id}
    assert shadow["customer_id"].to_pylist() == scores["customer_id"].to_pylist()

    # every model's scores are its own predict_proba on the same rows
    features = _partition(job.features.table, day)
    assert features["customer_id"].to_pylist() == scores["customer_id"].to_pylist()
    champion_scores = scores["score"].to_numpy()
    challenger_scores = shadow["score"].to_numpy()
    np.testing.assert_allclose(champion_scores, _predict(world, registry.champion, features))
    np.testing.assert_allclose(challenger_scores, _predict(world, registry.challenger, features))
    assert not np.allclose(champion_scores, challenger_scores)

    (lineage,) = lineage_rows(world, run_id=result.run_id)
    details = json.loads(lineage["details"])

    # the challenger that does not resolve is recorded, and did not block anything
    by_ref = {c["reference"]: c for c in details["shadow"]["challengers"]}
    assert by_ref[f"{MODEL}@challenger"]["status"] == "ok"
    assert by_ref[f"{MODEL}@no_such_alias"]["status"] == "failed"
    assert "no_such_alias" in by_ref[f"{MODEL}@no_such_alias"]["error"]
    assert details["shadow"]["version"] == tables.table_version(job.shadow_table)

    # the comparison in the metrics table matches the published scores, computed here in numpy
    metrics = [
        m
        for m in tables.read_table(world.platform.metrics_table).to_pylist()
        if m["run_id"] == result.run_id and m["role"] == "challenger"
    ]
    ok = next(m for m in metrics if m["challenger_status"] == "ok")
    failed = next(m for m in metrics if m["challenger_status"] == "failed")
    assert failed["model_reference"] == f"{MODEL}@no_such_alias" and not failed["published"]
    assert ok["model_version"] == registry.challenger
    assert ok["champion_version"] == registry.champion
    assert ok["published"] is True
    assert ok["rows"] == ROWS_PER_DAY
    assert ok["score_correlation"] == pytest.approx(
        np.corrcoef(champion_scores, challenger_scores)[0, 1], rel=1e-9
    )
    assert ok["mean_difference"] == pytest.approx(
        float(np.mean(challenger_scores - champion_scores)), abs=1e-12
    )
    flips = np.mean((champion_scores >= 0.5) != (challenger_scores >= 0.5))
    assert ok["decision_threshold"] == 0.5
    assert ok["decision_flip_share"] == pytest.approx(flips, abs=1e-12)
    edges = np.linspace(0, 1, 11)
    expected_psi = psi(
        np.histogram(challenger_scores, edges)[0].tolist(),
        np.histogram(champion_scores, edges)[0].tolist(),
    )
    assert ok["psi_champion"] == pytest.approx(expected_psi, rel=1e-9)
    assert ok["bin_counts"] == np.histogram(challenger_scores, edges)[0].tolist()
    assert ok["mean"] == pytest.approx(float(challenger_scores.mean()), rel=1e-12)
    assert ok["std"] == pytest.approx(float(challenger_scores.std()), rel=1e-9)
    return details


def test_scan_metric_counts_a_second_read(world, spark, registry):
    """Negative control for the read-once assertion: scoring the partition in two separate
    passes (one per model) shows up as two scans and twice the rows."""
    from lakescore.ml.models import ModelRef, download_model, resolve_model_version
    from lakescore.ml.scoring import score_features
    from lakescore.ml.shadow import keep_scan_locations, source_scan

    keep_scan_locations(spark)
    job = world.job(JOB)
    info = tables.partition_info(job.features.table, "ds", DAYS[0])
    source = tables.read_partition(spark, job.features.table, "ds", DAYS[0], info.version)
    group = "lakescore-test-two-passes"
    spark.sparkContext.setJobGroup(group, "two passes")
    outs = []
    for version in (registry.champion, registry.challenger):
        model = resolve_model_version(world.platform, ModelRef(name=MODEL, version=version))
        model_dir = download_model(world.platform, model, job=JOB)
        outs.append(
            score_features(
                source, model, str(model_dir), ["customer_id"], model.feature_columns
            ).withColumnRenamed("score", f"s{version}")
        )
    assert outs[0].join(outs[1], "customer_id").count() == ROWS_PER_DAY
    scan = source_scan(spark, group, job.features.table)
    assert scan["scans"] == 2
    assert scan["rows"] == 2 * ROWS_PER_DAY


def test_shadow_off_for_a_run_leaves_the_shadow_table_alone(world, spark, registry):
    _set_champion(world, registry.champion)
    _write_job(world, "[{alias: challenger}]")
    job = world.job(JOB)
    before = tables.table_version(job.shadow_table)
    result = score_partition(job, DAYS[1], platform=world.platform, spark=spark, shadow=False)
    assert tables.table_version(job.shadow_table) == before
    (lineage,) = lineage_rows(world, run_id=result.run_id)
    assert "shadow" not in json.loads(lineage["details"])
    assert _partition(job.output.table, DAYS[1]).num_rows == ROWS_PER_DAY


def _register_failing_in_workers(world: World) -> int:
    """A model that loads but cannot score: fitted on three features, registered with the
    full signature, so its ``predict_proba`` refuses the workers' nine-column batches."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from lakescore.local.demo import FEATURES, generate_customers
    from lakescore.ml.models import configure_mlflow

    configure_mlflow(world.platform)
    data = generate_customers(2_000, 9)
    full = pd.DataFrame({c: data[c] for c in FEATURES})
    model = LogisticRegression(max_iter=200).fit(np.asarray(full)[:, :3], data["churned"])
    with mlflow.start_run(run_name="fails-in-workers"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(full.head(), np.zeros((5, 2))),
            registered_model_name=MODEL,
            pip_requirements=["scikit-learn"],
        )
    version = int(info.registered_model_version)
    MlflowClient().set_registered_model_alias(MODEL, "fails_in_workers", str(version))
    return version


def _challenger_failed_and_champion_published(world, job, result, champion, challenger):
    scores = _partition(job.output.table, DAYS[2])
    assert set(scores["run_id"].to_pylist()) == {result.run_id}
    assert set(scores["model_version"].to_pylist()) == {champion}
    (lineage,) = lineage_rows(world, run_id=result.run_id)
    assert lineage["status"] == "succeeded"
    (entry,) = json.loads(lineage["details"])["shadow"]["challengers"]
    (metric,) = [
        m
        for m in tables.read_table(world.platform.metrics_table).to_pylist()
        if m["run_id"] == result.run_id and m["role"] == "challenger"
    ]
    assert metric["challenger_status"] == "failed" and metric["published"] is False
    assert metric["model_version"] == challenger
    return entry


def test_a_challenger_that_cannot_be_loaded_does_not_block_the_champion(world, spark, registry):
    """A challenger whose model artifact is corrupt fails when the driver loads it: marked
    failed, the champion publishes, the shadow partition stays as it was."""
    from lakescore.local.demo import train_and_register

    _set_champion(world, registry.champion)
    broken = train_and_register(
        world.platform,
        MODEL,
        alias="broken",
        rows=2_000,
        max_iter=3,
        seed=2,
        force_new_version=True,
    ).version
    # the local model cache the driver loads from: a corrupt copy of the version
    cached = world.root / "var" / "models" / MODEL / str(broken)
    cached.mkdir(parents=True)
    (cached / "MLmodel").write_text("flavors: {sklearn: {pickled_model: missing.pkl}}\n")
    _write_job(world, "[{alias: broken}]")
    job = world.job(JOB)
    shadow_before = tables.table_version(job.shadow_table)

    result = score_partition(job, DAYS[2], platform=world.platform, spark=spark)

    entry = _challenger_failed_and_champion_published(world, job, result, registry.champion, broken)
    assert entry["status"] == "failed" and "not loaded" in entry["error"]
    assert tables.table_version(job.shadow_table) == shadow_before
    (lineage,) = lineage_rows(world, run_id=result.run_id)
    assert json.loads(lineage["details"])["shadow"]["error"] is None  # nothing else failed


@pytest.mark.parametrize("validation", ["quarantine", "off"])
def test_a_challenger_that_fails_in_the_workers_does_not_block_the_champion(
    world, spark, registry, validation
):
    """A challenger that loads but raises in the Python workers: null scores there, the
    driver marks it failed, the champion publishes, the shadow partition stays as it was.
    With the file reader the tasks write the files: the failed challenger's are removed;
    quarantine scores Spark's rows, and Spark stages them."""
    _set_champion(world, registry.champion)
    failing = _register_failing_in_workers(world)
    extra = (
        "validation: {enabled: false}\n"
        if validation == "off"
        else "validation: {policy: quarantine}\n"
    )
    _write_job(world, "[{alias: fails_in_workers}]", extra)
    job = world.job(JOB)
    shadow_before = tables.table_version(job.shadow_table)

    result = score_partition(job, DAYS[2], platform=world.platform, spark=spark)

    entry = _challenger_failed_and_champion_published(
        world, job, result, registry.champion, failing
    )
    assert entry["status"] == "failed" and "rows not scored" in entry["error"]
    assert tables.table_version(job.shadow_table) == shadow_before
    assert not os.path.exists(tables.run_folder(job.shadow_table, "ds", DAYS[2], result.run_id))
    (lineage,) = lineage_rows(world, run_id=result.run_id)
    expected_path = "commit" if validation == "off" else "staging"
    assert json.loads(lineage["details"])["publish_path"] == expected_path


def test_challenger_with_other_features_is_a_config_error_naming_it(world, spark, registry):
    _set_champion(world, registry.champion)
    _write_job(world, "[{alias: challenger}, {alias: narrow}]")
    job = world.job(JOB)
    before = tables.table_version(job.output.table)
    with pytest.raises(BadInputError) as caught:
        score_partition(job, DAYS[2], platform=world.platform, spark=spark)
    message = str(caught.value)
    assert "model.challengers[1]" in message and f"{MODEL}@narrow" in message
    assert caught.value.exit_code == 2
    assert tables.table_version(job.output.table) == before


def test_promote_prints_comparison_refuses_mismatch_and_backfill_moves_exactly_those_days(
    world, spark, registry, capsys
):
    from lakescore.cli import main

    _set_champion(world, registry.champion)
    _write_job(world, "[{alias: challenger}]")
    job = world.job(JOB)
    # every day published by the old champion (earlier tests of this file did most of it)
    for day in DAYS:
        if _published_versions(job, day) != {registry.champion}:
            score_partition(job, day, platform=world.platform, spark=spark)
    from lakescore.ml.shadow import latest_comparisons

    if not latest_comparisons(world.platform, JOB, registry.challenger):
        score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    conf = ["--conf", str(world.conf_dir)]

    # a version whose signature does not match the job's features is refused, alias unmoved
    capsys.readouterr()
    code = main(["promote", "--job", JOB, "--version", str(registry.narrow), "--yes", *conf])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to promote" in err and "not listed" in err
    assert _champion(world) == registry.champion

    promote = ["promote", "--job", JOB, "--version", str(registry.challenger), "--yes"]
    code = main([*promote, "--reason", "shadow looked fine", *conf])
    assert code == 0
    out = capsys.readouterr().out
    # the comparison table was printed first: this version's latest per-partition numbers
    shown = latest_comparisons(world.platform, JOB, registry.challenger)
    assert shown and all(c["model_version"] == registry.challenger for c in shown)
    assert "correlation" in out and "flips" in out
    for comparison in shown:
        assert f"{comparison['score_correlation']:.4f}" in out
    assert f"version {registry.champion} -> {registry.challenger}" in out
    assert _champion(world) == registry.challenger
    (row,) = [r for r in lineage_rows(world, job=JOB, action="promote")][-1:]
    promoted = json.loads(row["details"])["promote"]
    assert promoted["from_version"] == registry.champion
    assert promoted["to_version"] == registry.challenger
    assert promoted["reason"] == "shadow looked fine"
    assert row["model_version"] == registry.challenger and row["user"]
    assert promoted["comparisons"] and all(
        c["model_version"] == registry.challenger for c in promoted["comparisons"]
    )

    # "backfill" the last two days: exactly those partitions now carry the new version
    for day in DAYS[1:]:
        score_partition(job, day, platform=world.platform, spark=spark)
    versions = {day: _published_versions(job, day) for day in DAYS}
    assert versions == {
        DAYS[0]: {registry.champion},
        DAYS[1]: {registry.challenger},
        DAYS[2]: {registry.challenger},
    }
    _set_champion(world, registry.champion)


def _published_versions(job, day: date) -> set[int]:
    if not tables.table_exists(job.output.table):
        return set()
    return set(_partition(job.output.table, day)["model_version"].to_pylist())


def _champion(world: World) -> int:
    from mlflow import MlflowClient

    from lakescore.ml.models import configure_mlflow

    configure_mlflow(world.platform)
    return int(MlflowClient().get_model_version_by_alias(MODEL, "champion").version)
