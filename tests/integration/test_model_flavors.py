"""Models people register, scored end to end: XGBoost, LightGBM, a scikit-learn pipeline over
string columns, a regressor, a 3-class model and a custom pyfunc, each registered with
MLflow's own API into the test registry and scored from one feature table with string,
integer and float columns. What is published must equal the model's own ``predict_proba`` /
``predict`` on the same rows (read back with delta-rs), and models that cannot give what the
job asks for are refused before any Spark work.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lakescore.errors import BadInputError
from lakescore.lakehouse import tables
from lakescore.run import score_partition
from tests.conftest import World, lineage_rows

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 18)
DAY2 = date(2026, 11, 19)  # other rows (another seed): drift against DAY
ROWS = 2_000
NUMERIC = ["x1", "x2", "x3", "x4"]
STRINGS = ["plan", "region"]


def _features(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(ROWS, dtype=np.int64),
            **{c: rng.normal(size=ROWS) for c in NUMERIC},
            "plan": rng.choice(["basic", "plus", "max"], ROWS),
            "region": rng.choice(["north", "south"], ROWS),
            "visits": rng.integers(0, 20, ROWS).astype(np.int64),
        }
    )
    signal = frame.x1 + 0.5 * frame.x2 - frame.x3 * 0.3 + (frame.plan == "max") * 0.8
    frame["binary"] = (signal + rng.normal(scale=0.5, size=ROWS) > 0).astype(int)
    frame["three"] = np.digitize(signal, [-0.5, 0.5])
    frame["value"] = 3 * frame.x1 - 2 * frame.x4 + rng.normal(scale=0.1, size=ROWS)
    return frame


@dataclass
class Registry:
    world: World
    data: pd.DataFrame
    registered: dict[str, Any]  # model name -> the in-memory model that was logged


def _register(world: World, name: str, log: Any) -> None:
    import mlflow
    from mlflow import MlflowClient

    from lakescore.ml.models import configure_mlflow

    configure_mlflow(world.platform)
    mlflow.set_experiment("lakescore-demo")  # its artifact location is the registry store
    with warnings.catch_warnings(), mlflow.start_run(run_name=name):
        warnings.simplefilter("ignore")
        info = log(name)
    MlflowClient().set_registered_model_alias(name, "champion", str(info.registered_model_version))


def _log(world: World, name: str, flavor: str, model: Any, example: Any, **kwargs: Any) -> Any:
    """Register ``model`` as ``name`` (alias champion) with ``mlflow.<flavor>.log_model`` and
    ``example`` as its input example; returns the model."""
    import importlib

    log_model = importlib.import_module(f"mlflow.{flavor}").log_model
    _register(
        world,
        name,
        lambda n: log_model(
            model, name="model", input_example=example, registered_model_name=n, **kwargs
        ),
    )
    return model


def _job(world: World, name: str, extra: str = "", model: str = "") -> None:
    world.write_job(
        name,
        f"name: {name}\n"
        f"model: {{name: {model or name}, alias: champion}}\n"
        "features: {table: features/flavors, entity_keys: [customer_id]}\n"
        f"output: {{table: scores/{name}}}\n"
        "validation: {enabled: false}\n" + extra,
    )


@pytest.fixture(scope="module")
def registry(world: World) -> Registry:
    """One feature table and one registered model per flavor (about a minute)."""
    import lightgbm
    import mlflow
    import xgboost
    from deltalake import write_deltalake
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    data = _features()
    columns = ["customer_id", *NUMERIC, *STRINGS, "visits"]
    table = pa.concat_tables(
        pa.Table.from_pandas(frame[columns], preserve_index=False).append_column(
            "ds", pa.array([day] * ROWS, pa.date32())
        )
        for day, frame in ((DAY, data), (DAY2, _features(seed=12)))
    )
    write_deltalake(
        str(world.root / "warehouse" / "features" / "flavors"),
        table,
        partition_by=["ds"],
        mode="overwrite",
    )
    numeric = data[NUMERIC]
    both = data[[*NUMERIC, *STRINGS]]
    models: dict[str, Any] = {}

    models["flavor_xgb"] = _log(
        world,
        "flavor_xgb",
        "xgboost",
        xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(numeric, data.binary),
        numeric.head(3),
    )
    models["flavor_lgbm"] = _log(
        world,
        "flavor_lgbm",
        "lightgbm",
        lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(numeric, data.binary),
        numeric.head(3),
    )
    pipeline = make_pipeline(
        ColumnTransformer(
            [("onehot", OneHotEncoder(handle_unknown="ignore"), STRINGS)],
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=500),
    )
    models["flavor_pipeline"] = _log(
        world, "flavor_pipeline", "sklearn", pipeline.fit(both, data.binary), both.head(3)
    )
    models["flavor_regressor"] = GradientBoostingRegressor(n_estimators=20).fit(numeric, data.value)

    def log_regressor(n: str) -> Any:
        # A training baseline over [-6, 6] (the model's own predictions): the drift
        # histogram's range, where the audit allows -100..100.
        edges = [-6.0 + i for i in range(13)]
        counts = np.histogram(np.clip(models[n].predict(numeric), -6, 6), bins=edges)[0]
        mlflow.log_dict(
            {"bin_edges": edges, "bin_counts": [int(c) for c in counts]},
            "lakescore/score_baseline.json",
        )
        return mlflow.sklearn.log_model(
            models[n],
            name="model",
            input_example=numeric.head(3),
            registered_model_name=n,
            skops_trusted_types=[
                "sklearn.tree._tree.Tree",
                "sklearn._loss.loss.HalfSquaredError",
                "sklearn._loss.link.IdentityLink",
                "sklearn._loss.link.Interval",
            ],
        )

    _register(world, "flavor_regressor", log_regressor)
    models["flavor_three"] = _log(
        world,
        "flavor_three",
        "sklearn",
        LogisticRegression(max_iter=500).fit(numeric, data.three),
        numeric.head(3),
    )

    class Probabilities(mlflow.pyfunc.PythonModel):
        """P(no), P(yes) from x1 and whether the plan is 'max' (a string input)."""

        def predict(self, context: Any, model_input: pd.DataFrame) -> pd.DataFrame:
            z = model_input["x1"].to_numpy() + (model_input["plan"] == "max").to_numpy()
            p = 1 / (1 + np.exp(-z))
            return pd.DataFrame({"no": 1 - p, "yes": p})

    class Labels(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame) -> np.ndarray:
            return (model_input["x1"].to_numpy() > 0).astype(np.int64)

    example = data[["x1", "plan"]].head(5)

    def log_pyfunc(name: str, model: Any, outputs_of: Any = None) -> None:
        """A custom pyfunc whose output signature is that of ``outputs_of`` (else its own)."""
        outputs = (outputs_of or model).predict(None, example)
        models[name] = model
        _register(
            world,
            name,
            lambda n: mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=infer_signature(example, outputs),
                registered_model_name=n,
            ),
        )

    log_pyfunc("flavor_custom", Probabilities())

    class Broken(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame) -> pd.DataFrame:
            if (model_input["x1"] > 2.5).any():
                raise ValueError("x1 above 2.5 is outside the training range")
            return pd.DataFrame({"no": 0.5 + 0 * model_input["x1"], "yes": 0.5})

    log_pyfunc("flavor_broken", Broken(), outputs_of=Probabilities())
    log_pyfunc("flavor_labels", Labels())
    for name in models:
        _job(world, name)
    _job(world, "flavor_regressor", "audit: {score_min: -100, score_max: 100}\n")
    for name in ("flavor_custom", "flavor_broken"):  # classes named by their output columns
        world.write_job(
            name,
            f"name: {name}\n"
            f"model: {{name: {name}, alias: champion, positive_class: 'yes'}}\n"
            "features: {table: features/flavors, entity_keys: [customer_id]}\n"
            f"output: {{table: scores/{name}}}\n"
            "validation: {enabled: false}\n",
        )
    return Registry(world, data, models)


def _partition(uri: str, day: date, key: str = "customer_id") -> pd.DataFrame:
    """Partition ``day`` of a table (delta-rs), sorted by ``key``."""
    rows = tables.read_table(uri, partition_column="ds", start=day, end=day)
    return rows.to_pandas().sort_values(key).reset_index(drop=True)


def _published(world: World, job_name: str) -> pd.DataFrame:
    return _partition(world.job(job_name).output.table, DAY)


def _assert_multiclass(got: pd.DataFrame, model: Any, features: pd.DataFrame, atol: float) -> None:
    """``label``, ``score`` and ``probabilities`` equal the model's own ``predict_proba`` on
    the same rows: the predicted class, its probability and every class's."""
    proba = model.predict_proba(features)
    labels = model.classes_[proba.argmax(axis=1)].astype(str)
    assert got.label.tolist() == labels.tolist()
    np.testing.assert_allclose(got.score.to_numpy(), proba.max(axis=1), rtol=0, atol=atol)
    for i in (0, 1, len(got) - 1):
        published = dict(got.probabilities[i])
        assert set(published) == {str(c) for c in model.classes_}
        expected = proba[i]
        got_i = [published[str(c)] for c in model.classes_]
        np.testing.assert_allclose(got_i, expected, rtol=0, atol=atol)


def _metrics(world: World, run_id: str) -> list[dict]:
    rows = tables.read_table(world.platform.metrics_table).to_pylist()
    return [r for r in rows if r["run_id"] == run_id and r["role"] == "champion"]


def _cli(world: World, *args: str) -> Any:
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / "lakescore"), "--conf", str(world.conf_dir)]
    env = {**os.environ, "LAKESCORE_CONF": str(world.conf_dir)}
    env.pop("LAKESCORE_VERBOSE", None)
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, env=env)


def _orders(world: World) -> pd.DataFrame:
    """Feature table ``features/orders`` (partition DAY; written once): a nullable integer
    with missing values, a boolean, a UTC timestamp and a string column."""
    from deltalake import write_deltalake

    rng = np.random.default_rng(3)
    items = pd.array(rng.integers(1, 12, ROWS), dtype="Int64")
    items[5:][rng.random(ROWS - 5) < 0.1] = pd.NA  # an input example (5 rows) has none
    created = pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(rng.integers(0, 86400, ROWS), "s")
    table = pd.DataFrame(
        {
            "order_id": np.arange(ROWS, dtype=np.int64),
            "amount": rng.gamma(2.0, 30.0, ROWS),
            "items": items,
            "is_member": rng.random(ROWS) < 0.4,
            "channel": rng.choice(["web", "app", "store"], ROWS),
            "created_at": created,
            "ds": DAY,
        }
    )
    uri = world.root / "warehouse" / "features" / "orders"
    if not tables.table_exists(str(uri)):
        write_deltalake(str(uri), table, partition_by=["ds"])
    return table


def _orders_job(world: World, name: str, model: str) -> None:
    world.write_job(
        name,
        f"name: {name}\n"
        f"model: {{name: {model}, alias: champion}}\n"
        "features: {table: features/orders, entity_keys: [order_id]}\n"
        f"output: {{table: scores/{name}}}\n"
        "audit: {score_min: -1000, score_max: 100000}\n"
        "validation: {enabled: false}\n",
    )


def _score(registry: Registry, spark: Any, name: str) -> pd.DataFrame:
    world = registry.world
    result = score_partition(world.job(name), DAY, platform=world.platform, spark=spark)
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["status"] == "succeeded"
    return _published(world, name)


@pytest.mark.parametrize("name", ["flavor_xgb", "flavor_lgbm", "flavor_pipeline"])
def test_binary_score_equals_the_models_own_predict_proba(registry, spark, name):
    got = _score(registry, spark, name)
    model = registry.registered[name]
    columns = [*NUMERIC, *STRINGS] if name == "flavor_pipeline" else NUMERIC
    expected = model.predict_proba(registry.data[columns])[:, list(model.classes_).index(1)]
    assert len(got) == ROWS and got.customer_id.tolist() == list(range(ROWS))
    np.testing.assert_allclose(got.score.to_numpy(), expected, rtol=0, atol=1e-6)
    assert "label" not in got.columns


def test_regression_publishes_the_predicted_value(registry, spark):
    got = _score(registry, spark, "flavor_regressor")
    expected = registry.registered["flavor_regressor"].predict(registry.data[NUMERIC])
    np.testing.assert_allclose(got.score.to_numpy(), expected, rtol=0, atol=1e-9)
    assert got.score.min() < 0 < got.score.max()  # values, not probabilities
    (row,) = lineage_rows(registry.world, run_id=got.run_id[0])
    assert '"model_task": "regression"' in row["details"]
    # drift: the histogram is over the training baseline's range, not the audit's -100..100
    (metrics,) = _metrics(registry.world, got.run_id[0])
    assert metrics["bin_edges"][0] == -6.0 and metrics["bin_edges"][-1] == 6.0
    assert sum(metrics["bin_counts"]) == ROWS and metrics["psi_baseline"] is not None
    assert metrics["bin_labels"] is None


def test_lakescore_jobs_says_what_auto_decided(registry, spark, capsys):
    import json

    from lakescore.cli import main

    _score(registry, spark, "flavor_lgbm")
    assert main(["jobs", "--json", "--conf", str(registry.world.conf_dir)]) in (0, 2)
    rows = {row["job"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["flavor_lgbm"]["task"] == "auto (binary)"
    assert rows["flavor_labels"]["task"] == "auto"  # never scored


def test_multiclass_publishes_label_probabilities_and_the_predicted_class_probability(
    registry, spark
):
    got = _score(registry, spark, "flavor_three")
    model = registry.registered["flavor_three"]
    _assert_multiclass(got, model, registry.data[NUMERIC], atol=1e-12)
    assert len(set(got.label)) == 3 and list(model.classes_) == [0, 1, 2]
    # drift of a multiclass model: its label shares, against the previous partition's
    (first,) = _metrics(registry.world, got.run_id[0])
    assert first["bin_labels"] == ["0", "1", "2"]
    assert first["bin_counts"] == [int((got.label == c).sum()) for c in ("0", "1", "2")]
    world = registry.world
    result = score_partition(world.job("flavor_three"), DAY2, platform=world.platform, spark=spark)
    (second,) = _metrics(world, result.run_id)
    assert second["previous_ds"] == DAY and second["psi_previous"] is not None
    assert second["psi_baseline"] is None  # a score baseline says nothing about labels
    # the job's report renders from these rows (its histogram shows the label shares' bins)
    from lakescore.reporting.report import render_job_report

    assert "flavor_three" in render_job_report(world.platform, "flavor_three")


def test_custom_pyfunc_gets_the_signatures_columns_by_name_with_strings(registry, spark):
    got = _score(registry, spark, "flavor_custom")
    model = registry.registered["flavor_custom"]
    expected = model.predict(None, registry.data[["x1", "plan"]])["yes"].to_numpy()
    np.testing.assert_allclose(got.score.to_numpy(), expected, rtol=0, atol=1e-12)


def test_a_label_returning_pyfunc_is_refused_before_spark_work(registry):
    world = registry.world
    with pytest.raises(BadInputError, match="returns class labels") as info:
        score_partition(world.job("flavor_labels"), DAY, platform=world.platform)
    assert info.value.exit_code == 2
    assert not tables.table_exists(world.job("flavor_labels").output.table)


def test_a_regression_job_without_bounds_and_a_wrong_task_are_refused(registry):
    world = registry.world
    _job(world, "flavor_regressor_nobounds", model="flavor_regressor")
    with pytest.raises(BadInputError, match=r"set audit\.score_min and audit\.score_max"):
        score_partition(world.job("flavor_regressor_nobounds"), DAY, platform=world.platform)
    world.write_job(
        "flavor_three_as_regression",
        "name: flavor_three_as_regression\n"
        "model: {name: flavor_three, alias: champion, task: regression}\n"
        "features: {table: features/flavors, entity_keys: [customer_id]}\n"
        "output: {table: scores/flavor_three_as_regression}\n"
        "audit: {score_min: 0, score_max: 2}\n",
    )
    with pytest.raises(BadInputError, match="is a classifier"):
        score_partition(world.job("flavor_three_as_regression"), DAY, platform=world.platform)


def test_a_python_worker_exception_is_one_line_naming_job_partition_and_model(registry, spark):
    from lakescore.errors import ScoringFailure

    world = registry.world
    with pytest.raises(ScoringFailure) as info:
        score_partition(world.job("flavor_broken"), DAY, platform=world.platform, spark=spark)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("job 'flavor_broken', partition 2026-11-18: model flavor_broken")
    assert "ValueError: x1 above 2.5 is outside the training range" in text
    assert "at org.apache" not in text and "Traceback" not in text
    assert not tables.table_exists(world.job("flavor_broken").output.table)


def test_new_job_writes_a_checked_job_from_the_signature_and_the_table(registry, spark):
    from lakescore.ml.scaffold import write_new_job

    world = registry.world
    made = write_new_job(
        world.platform,
        model="flavor_pipeline@champion",
        features_table="features/flavors",
        name="pipeline_new",
    )
    assert made.name == "pipeline_new"
    assert made.keys == ["customer_id"] and made.partition_column == "ds"
    assert made.task == "binary" and made.flavor == "sklearn"
    assert made.features == [*NUMERIC, *STRINGS]
    assert any("entity_keys" in item for item in made.review)
    text = Path(made.path).read_text()
    assert "# REVIEW" in text and "positive_class: 1" in text
    job = world.job(made.name)
    assert job.model.task == "binary" and job.features.entity_keys == ["customer_id"]
    # the written job scores as it is
    result = score_partition(job, DAY, platform=world.platform, spark=spark)
    assert result.output_version is not None


def test_the_cli_shows_a_worker_exception_as_one_line_without_java_stack_traces(registry):
    out = _cli(registry.world, "score", "--job", "flavor_broken", "--ds", DAY.isoformat())
    assert out.returncode == 1, out.stderr[-2000:]
    last = out.stderr.rstrip().splitlines()[-1]
    assert last.startswith("error: job 'flavor_broken', partition 2026-11-18: model flavor_broken")
    assert "ValueError: x1 above 2.5" in last
    assert "\tat org.apache" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("flavor", ["lightgbm", "xgboost"])
def test_boosters_trained_on_pandas_categoricals_get_string_columns_as_categoricals(
    flavor, tmp_path
):
    """A string feature column feeds a booster trained on a pandas categorical: the scores
    equal the booster's own on the same rows, also for a batch that lacks a category."""
    import importlib

    import lightgbm
    import xgboost
    from mlflow.models import infer_signature

    from lakescore.ml.models import ModelScorer, ScorerSpec
    from lakescore.ml.scoring import feature_frame

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"x": rng.normal(size=3000), "plan": pd.Categorical(rng.choice(["a", "b", "c"], 3000))}
    )
    y = ((frame.x > 0) ^ (frame.plan == "b")).astype(int)
    model = (
        lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)
        if flavor == "lightgbm"
        else xgboost.XGBClassifier(n_estimators=20, enable_categorical=True)
    ).fit(frame, y)
    # MLflow cannot infer this signature from an input example (its round trip turns the
    # categorical into strings, which the booster refuses): it is given.
    importlib.import_module(f"mlflow.{flavor}").save_model(
        model, str(tmp_path / "m"), signature=infer_signature(frame, model.predict(frame))
    )
    inputs = (("x", "double"), ("plan", "string"))
    scorer = ModelScorer(str(tmp_path / "m"), ScorerSpec(flavor, 1, "auto", inputs))
    assert scorer.task == "binary" and not scorer.takes_matrix and scorer.categorical
    for rows in (frame, frame[frame.plan != "a"]):
        batch = pa.RecordBatch.from_pandas(
            rows.assign(plan=rows.plan.astype(str)), preserve_index=False
        )
        got = scorer.score(feature_frame(batch, inputs, categorical=True)).score
        np.testing.assert_allclose(got, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-7)


def test_a_pyfunc_gets_every_signature_type_it_enforces(tmp_path):
    """Feature columns of other Arrow types (int32 for long, int64 for float, a UTC timestamp
    for datetime) and with nulls are cast to what the signature says, and MLflow's own schema
    enforcement accepts the frame; an integer column with nulls is the one thing MLflow
    refuses (declare it double), and the error names the column."""
    import datetime as dt

    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from lakescore.ml.scoring import feature_frame

    class Half(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"p": np.full(len(model_input), 0.5)})

    specs = [
        ("d", "double", True),
        ("f", "float", True),
        ("l", "long", True),
        ("i", "integer", True),
        ("b", "boolean", True),
        ("s", "string", True),
        ("t", "datetime", True),
        ("sn", "string", False),
    ]
    signature = ModelSignature(
        inputs=Schema([ColSpec(kind, name, required=req) for name, kind, req in specs]),
        outputs=Schema([ColSpec("double", "p")]),
    )
    mlflow.pyfunc.save_model(str(tmp_path / "m"), python_model=Half(), signature=signature)
    model = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    utc = dt.UTC
    batch = pa.RecordBatch.from_pydict(
        {
            "d": pa.array([1.0, None], pa.float64()),
            "f": pa.array([1, 2], pa.int64()),
            "l": pa.array([1, 2], pa.int32()),
            "i": pa.array([1, 2], pa.int32()),
            "b": pa.array([True, False]),
            "s": pa.array(["a", None]),
            "t": pa.array([dt.datetime(2026, 1, 1, tzinfo=utc), None], pa.timestamp("us", utc)),
            "sn": pa.array([None, "x"]),
        }
    )
    inputs = tuple((name, kind) for name, kind, _ in specs)
    frame = feature_frame(batch, inputs)
    assert list(frame.columns) == [name for name, _, _ in specs]
    assert str(frame["f"].dtype) == "float32" and str(frame["i"].dtype) == "int32"
    assert str(frame["t"].dtype) == "datetime64[ns]" and frame["t"].iloc[0].year == 2026
    assert model.predict(frame)["p"].tolist() == [0.5, 0.5]

    nulls = batch.set_column(2, "l", pa.array([1, None], pa.int64()))
    with pytest.raises(mlflow.exceptions.MlflowException, match="column l"):
        model.predict(feature_frame(nulls, inputs))


def test_a_task_change_on_an_existing_prediction_table_fails_before_spark_work(registry, spark):
    """binary -> multiclass (label and probabilities would appear) and regression -> binary
    (same columns, score would change meaning): exit 2 before any Spark stage, one line
    naming the job, the table, what differs and what to do; the table is left as it was."""
    world = registry.world
    _job(world, "task_change", model="flavor_lgbm")
    _job(
        world,
        "task_change_reg",
        "audit: {score_min: -100, score_max: 100}\n",
        model="flavor_regressor",
    )
    for name in ("task_change", "task_change_reg"):
        score_partition(world.job(name), DAY, platform=world.platform, spark=spark)
    binary_table = world.job("task_change").output.table
    assert tables.table_properties(binary_table)["lakescore.task"] == "binary"
    before = {
        n: tables.table_version(world.job(n).output.table)
        for n in ("task_change", "task_change_reg")
    }

    _job(world, "task_change", model="flavor_three")  # the job's model is now multiclass
    out = _cli(world, "score", "--job", "task_change", "--ds", DAY2.isoformat())
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(
        f"error: job 'task_change', partition {DAY2}, file {binary_table}, key 'output.table': "
    )
    assert "holds binary predictions, but model flavor_three version 1 is multiclass" in line
    assert "the table has no column label, probabilities" in line
    assert "set output.table, e.g. scores/task_change_multiclass" in line
    assert "lakescore score --job task_change --from D1 --to D2" in line
    assert "Traceback" not in out.stderr and "\tat org.apache" not in out.stderr

    _job(
        world, "task_change_reg", "audit: {score_min: -100, score_max: 100}\n", model="flavor_xgb"
    )  # regression -> binary: the same columns
    with pytest.raises(BadInputError) as info:
        score_partition(world.job("task_change_reg"), DAY2, platform=world.platform)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert "column score holds the predicted value there, P(positive class) in this run" in str(
        info.value
    )
    for name, version in before.items():
        assert tables.table_version(world.job(name).output.table) == version  # nothing published
        (failed,) = [r for r in lineage_rows(world, job=name) if r["status"] == "failed"]
        assert failed["error_class"] == "BadInputError" and failed["output_version"] is None
        stages = set(dict(failed["stage_seconds"] or []))
        assert "load_model" in stages and not {"spark_start", "score", "publish"} & stages


def test_a_multiclass_challenger_publishes_label_and_probabilities_to_the_shadow_table(
    registry, spark
):
    """A multiclass champion with a multiclass challenger (LightGBM): the shadow table carries
    the challenger's label and probabilities like the prediction table, equal to the model's
    own predict_proba, on the first run (Spark publish) and the next (files committed)."""
    import lightgbm

    world, data = registry.world, registry.data
    challenger = _log(
        world,
        "flavor_three_lgbm",
        "lightgbm",
        lightgbm.LGBMClassifier(n_estimators=15, verbose=-1).fit(data[NUMERIC], data.three),
        data[NUMERIC].head(3),
    )
    _job(world, "three_shadow", model="flavor_three")
    text = (
        (world.conf_dir / "jobs" / "three_shadow.yaml")
        .read_text()
        .replace(
            "alias: champion}",
            "alias: champion, challengers: [{name: flavor_three_lgbm, alias: champion}]}",
            1,
        )
    )
    (world.conf_dir / "jobs" / "three_shadow.yaml").write_text(text)
    job = world.job("three_shadow")
    for day, seed in ((DAY, 11), (DAY2, 12)):
        result = score_partition(job, day, platform=world.platform, spark=spark)
        (row,) = lineage_rows(world, run_id=result.run_id)
        shadow = json.loads(row["details"])["shadow"]
        assert shadow["error"] is None and shadow["challengers"][0]["status"] == "ok", shadow
        got = _partition(job.shadow_table, day)
        assert len(got) == ROWS and set(got.model_name) == {"flavor_three_lgbm"}
        _assert_multiclass(got, challenger, _features(seed)[NUMERIC], atol=1e-6)
    assert tables.table_properties(job.shadow_table)["lakescore.task"] == "multiclass"
    assert json.loads(row["details"])["publish_path"] == "commit"  # the second run's path


def test_requirements_warn_scores_and_says_which_package_and_versions(registry):
    """A model logged with a scikit-learn pin this environment does not satisfy: with
    ``model.requirements: warn`` the run scores, and the warning (package, both versions)
    is on the terminal and in the lineage row."""
    from importlib.metadata import version

    from sklearn.linear_model import LogisticRegression

    world, data = registry.world, registry.data
    model = _log(
        world,
        "flavor_old_sklearn",
        "sklearn",
        LogisticRegression(max_iter=300).fit(data[NUMERIC], data.binary),
        data[NUMERIC].head(3),
        pip_requirements=["scikit-learn==1.5.2", "numpy"],
    )
    _job(world, "old_sklearn", model="flavor_old_sklearn")
    with pytest.raises(BadInputError, match=r"set model\.requirements: warn"):  # the default
        score_partition(world.job("old_sklearn"), DAY, platform=world.platform)

    text = (world.conf_dir / "jobs" / "old_sklearn.yaml").read_text()
    (world.conf_dir / "jobs" / "old_sklearn.yaml").write_text(
        text.replace("alias: champion}", "alias: champion, requirements: warn}", 1)
    )
    out = _cli(world, "score", "--job", "old_sklearn", "--ds", DAY.isoformat())
    assert out.returncode == 0, out.stderr[-2000:]
    expected = f"scikit-learn (model logged with ==1.5.2, installed {version('scikit-learn')})"
    (line,) = [x for x in out.stderr.splitlines() if "requirement not satisfied" in x]
    assert expected in line and "flavor_old_sklearn version 1" in line
    (row,) = [r for r in lineage_rows(world, job="old_sklearn") if r["status"] == "succeeded"]
    assert row["model_name"] == "flavor_old_sklearn" and row["output_version"] is not None
    warnings_ = json.loads(row["details"])["warnings"]
    assert len(warnings_) == 1 and expected in warnings_[0]
    got = _published(world, "old_sklearn")
    np.testing.assert_allclose(
        got.score.to_numpy(), model.predict_proba(data[NUMERIC])[:, 1], rtol=0, atol=1e-9
    )


def test_a_cloudpickled_pipeline_over_nullable_ints_timestamps_and_booleans(registry, spark):
    """A scikit-learn Pipeline saved with cloudpickle (what MLflow asks for when skops refuses
    the training code's own function) whose FunctionTransformer calls a function pickle
    cannot import (a training script's ``__main__`` function; here a local one), over a table
    with a nullable integer, a boolean, a UTC timestamp and a string column: the workers get
    the estimator by value, and the scores equal its own predict_proba."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    world = registry.world
    table = _orders(world)
    # MLflow infers no signature from timezone-aware timestamps: train on naive UTC ones
    X = table.drop(columns=["order_id", "ds"])
    X = X.assign(created_at=X.created_at.dt.tz_localize(None))
    y = ((X.amount > 60) ^ X.is_member ^ (X.channel == "app")).astype(int)

    def hour_of_day(frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([pd.to_datetime(frame[c]).dt.hour for c in frame.columns])

    prepare = ColumnTransformer(
        [
            ("num", SimpleImputer(), ["amount", "items"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
            ("flag", "passthrough", ["is_member"]),
            ("time", FunctionTransformer(hour_of_day), ["created_at"]),
        ]
    )
    pipeline = Pipeline([("prep", prepare), ("clf", LogisticRegression(max_iter=500))])
    model = _log(
        world,
        "flavor_orders",
        "sklearn",
        pipeline.fit(X, y),
        X.head(5),
        serialization_format="cloudpickle",
    )
    _orders_job(world, "orders", "flavor_orders")
    result = score_partition(world.job("orders"), DAY, platform=world.platform, spark=spark)
    got = _partition(world.job("orders").output.table, DAY, key="order_id")
    assert result.rows == ROWS and got.order_id.tolist() == list(range(ROWS))
    expected = model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(got.score.to_numpy(), expected, rtol=0, atol=1e-9)


def test_a_pyfunc_with_an_integer_input_is_refused_missing_values_before_spark_work(registry):
    """MLflow refuses missing values in a pyfunc's integer input in every worker: a partition
    whose Delta log counts nulls in such a column is refused before any Spark work, naming
    the column and how to log the model instead."""
    import mlflow

    class BasketValue(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame) -> pd.Series:
            items = model_input["items"].astype("float64").fillna(0.0)
            return model_input["amount"] * 1.1 + items * 3

    world = registry.world
    example = _orders(world)[["amount", "items"]].head(5)  # no missing items: 'long'
    _register(
        world,
        "flavor_basket",
        lambda n: mlflow.pyfunc.log_model(
            name="model",
            python_model=BasketValue(),
            input_example=example,
            registered_model_name=n,
        ),
    )
    _orders_job(world, "basket", "flavor_basket")
    with pytest.raises(BadInputError) as info:
        score_partition(world.job("basket"), DAY, platform=world.platform)
    text = str(info.value)
    missing = int(_orders(world)["items"].isna().sum())
    assert info.value.exit_code == 2 and "\n" not in text and missing > 100
    assert "key 'model', column 'items'" in text
    assert f"{missing} rows of partition ds={DAY} have no value here" in text
    assert "declares it long: MLflow refuses missing values in an integer input" in text
    assert not tables.table_exists(world.job("basket").output.table)
    (row,) = lineage_rows(world, job="basket")
    assert "spark_start" not in dict(row["stage_seconds"] or [])
