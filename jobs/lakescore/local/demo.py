"""The demo world: a churn-style data set with a learnable signal, a registered model with a
training baseline, and a Delta feature table with several days of partitions.

Everything here is idempotent: a second ``make demo`` reuses the registered ``champion`` and
the feature partitions that already hold the expected rows.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.ml.models import BASELINE_ARTIFACT, configure_mlflow
from lakescore.run import RunResult

FEATURES: tuple[str, ...] = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls_90d",
    "late_payments_12m",
    "logins_30d",
    "data_usage_gb",
    "contract_months_left",
    "discount_pct",
    "num_products",
    "nps_score",
    "days_since_last_login",
)


def generate_customers(rows: int, seed: int, drift: float = 0.0) -> dict[str, np.ndarray]:
    """Synthetic customers: float64 features and a churn label with a real, learnable signal."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 14.0, rows)
    monthly = rng.normal(70 + 5 * drift, 25, rows).clip(10, 200)
    data = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": tenure * monthly * rng.uniform(0.9, 1.1, rows),
        "support_calls_90d": rng.poisson(1.2 + drift, rows).astype(np.float64),
        "late_payments_12m": rng.poisson(0.6, rows).astype(np.float64),
        "logins_30d": rng.poisson(12, rows).astype(np.float64),
        "data_usage_gb": rng.lognormal(2.0, 0.8, rows),
        "contract_months_left": rng.integers(0, 25, rows).astype(np.float64),
        "discount_pct": rng.choice([0.0, 5.0, 10.0, 20.0], rows),
        "num_products": rng.integers(1, 6, rows).astype(np.float64),
        "nps_score": rng.integers(0, 11, rows).astype(np.float64),
        "days_since_last_login": rng.exponential(6, rows),
    }
    logit = (
        -1.2
        - 0.05 * data["tenure_months"]
        + 0.018 * (data["monthly_charges"] - 70)
        + 0.45 * data["support_calls_90d"]
        + 0.5 * data["late_payments_12m"]
        - 0.06 * data["logins_30d"]
        - 0.09 * data["contract_months_left"]
        - 0.25 * (data["nps_score"] - 5)
        + 0.07 * data["days_since_last_login"]
        - 0.3 * (data["num_products"] - 1)
    )
    data["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return data


def score_distribution(scores: np.ndarray, bins: int = 100) -> dict[str, object]:
    """Fixed-bin histogram over [0, 1] plus quantiles: the baseline drift checks compare to."""
    counts, edges = np.histogram(scores, bins=bins, range=(0.0, 1.0))
    quantiles = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    return {
        "count": int(scores.size),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "bin_edges": [float(e) for e in edges],
        "bin_counts": [int(c) for c in counts],
        "quantiles": {
            str(q): float(v) for q, v in zip(quantiles, np.quantile(scores, quantiles), strict=True)
        },
    }


@dataclass(frozen=True)
class RegisteredDemoModel:
    name: str
    version: int
    auc: float
    created: bool


def train_and_register(
    platform: PlatformConfig,
    model_name: str,
    *,
    alias: str = "champion",
    rows: int = 60_000,
    seed: int = 7,
    max_iter: int = 100,
    force_new_version: bool = False,
) -> RegisteredDemoModel:
    """Train a HistGradientBoosting churn model, register it with a signature, point ``alias``
    at it and store the held-out score distribution with the version (training baseline)."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    configure_mlflow(platform)
    client = MlflowClient()
    if not force_new_version:
        try:
            mv = client.get_model_version_by_alias(model_name, alias)
            return RegisteredDemoModel(
                model_name, int(mv.version), float(mv.tags.get("auc", "nan")), False
            )
        except MlflowException:
            pass

    model, X, held_out, auc = _fit_demo_model(rows, seed, max_iter)
    example = pd.DataFrame(X[:5], columns=list(FEATURES))
    signature = infer_signature(example, model.predict_proba(X[:5]))
    _use_demo_experiment(platform)
    with warnings.catch_warnings(), mlflow.start_run(run_name=f"train-{model_name}") as run:
        warnings.filterwarnings("ignore", message="X has feature names")
        mlflow.log_params(
            {
                "model": "HistGradientBoostingClassifier",
                "max_iter": max_iter,
                "rows": rows,
                "seed": seed,
            }
        )
        mlflow.log_metric("auc_holdout", auc)
        import sklearn

        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            # Explicit requirements: MLflow would otherwise run `uv export` on this project.
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"mlflow=={mlflow.__version__}",
            ],
            registered_model_name=model_name,
            skops_trusted_types=[
                "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
            ],
        )
        baseline = score_distribution(held_out)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(BASELINE_ARTIFACT).name
            path.write_text(json.dumps(baseline, indent=2))
            mlflow.log_artifact(str(path), artifact_path=str(Path(BASELINE_ARTIFACT).parent))
        del run
    version = int(info.registered_model_version)
    client.set_model_version_tag(model_name, str(version), "auc", f"{auc:.4f}")
    client.set_model_version_tag(model_name, str(version), "lakescore.baseline", BASELINE_ARTIFACT)
    client.set_registered_model_alias(model_name, alias, str(version))
    return RegisteredDemoModel(model_name, version, auc, True)


def _fit_demo_model(
    rows: int, seed: int, max_iter: int
) -> tuple[Any, np.ndarray, np.ndarray, float]:
    """A HistGradientBoosting model fitted on 80 % of ``rows`` generated customers: the model,
    the feature matrix, the held-out scores and their AUC."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    data = generate_customers(rows, seed)
    X = np.column_stack([data[f] for f in FEATURES])
    y = data["churned"]
    split = int(rows * 0.8)
    model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=seed)
    model.fit(X[:split], y[:split])
    held_out = model.predict_proba(X[split:])[:, 1]
    return model, X, held_out, float(roc_auc_score(y[split:], held_out))


def _use_demo_experiment(platform: PlatformConfig) -> None:
    """The demo's MLflow experiment, created with its artifacts under the registry's root."""
    import mlflow

    experiment = "lakescore-demo"
    if mlflow.get_experiment_by_name(experiment) is None:
        artifact_root = platform.mlflow.artifact_root
        mlflow.create_experiment(
            experiment,
            artifact_location=(
                None
                if not artifact_root
                else artifact_root  # a URI (s3://...) as it is
                if "://" in artifact_root
                else Path(artifact_root).as_uri()
            ),
        )
    mlflow.set_experiment(experiment)


def demo_days(days: int, end: date | None = None) -> list[date]:
    end = end or date(2026, 11, 20)
    return [end - timedelta(days=days - 1 - i) for i in range(days)]


def write_feature_partitions(
    job: ScoringJob,
    days: list[date],
    rows_per_day: int,
    *,
    seed: int = 11,
    row_group_rows: int = 50_000,
) -> list[tuple[date, bool]]:
    """Write one partition per day (the same customers every day, features drifting a little)
    with delta-rs, skipping partitions that already hold ``rows_per_day`` rows."""
    import pyarrow as pa
    from deltalake import WriterProperties, write_deltalake

    from lakescore.lakehouse import tables
    from lakescore.storage import delta_options

    uri = job.features.table
    key = job.features.entity_keys[0]
    part = job.features.partition_column
    written = []
    for i, day in enumerate(days):
        if tables.table_exists(uri):
            info = tables.partition_info(uri, part, day)
            if info.rows == rows_per_day:
                written.append((day, False))
                continue
        data = generate_customers(rows_per_day, seed + i, drift=0.05 * i)
        data.pop("churned")
        columns = {key: np.arange(1, rows_per_day + 1, dtype=np.int64), **data}
        table = pa.table(columns)
        table = table.append_column(part, pa.array([day] * rows_per_day, pa.date32()))
        exists = tables.table_exists(uri)
        write_deltalake(
            uri,
            table,
            mode="overwrite" if exists else "error",
            partition_by=[part],
            predicate=tables.partition_predicate(part, day).replace("`", "") if exists else None,
            writer_properties=WriterProperties(max_row_group_size=row_group_rows),
            target_file_size=8 << 20,
            storage_options=delta_options(uri),
        )
        written.append((day, True))
    return written


ENTITY_QUERY = """select ds, customer_id, round(score, 4) as score, model_version, run_id
from scores_{job}
where customer_id = 42
order by ds"""

LINEAGE_QUERY = """select ds, action, status, model_name, model_version, input_version,
       input_rows, validation_status, output_version, output_rows, round(duration_s, 1) as seconds,
       airflow_task_id
from lineage
where job = '{job}' and ds = DATE '{ds}'
order by started_at"""


def score_through_airflow(
    platform: PlatformConfig, job_name: str, day: date, err: object
) -> RunResult:
    """``airflow dags test score_<job> <day>`` on a local SQLite Airflow under ``var/airflow``;
    the result is read back from the lineage row the run wrote."""
    import subprocess

    from lakescore.errors import ScoringFailure
    from lakescore.lakehouse.lineage import find_lineage
    from lakescore.local.airflow_local import airflow_bin, airflow_env, prepare

    home = Path(platform.var_dir) / "airflow"
    # Airflow 3.3.2's `dags test` crashes after a successful run of a DAG with a deadline
    # (apache/airflow#73428): leave deadlines out of this one-off run.
    env = airflow_env(home, conf_dir=platform.conf_dir, extra={"LAKESCORE_DEADLINES": "off"})
    prepare(env)
    started = time.perf_counter()
    out = subprocess.run(
        [airflow_bin(), "dags", "test", f"score_{job_name}", day.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = home / "demo-dags-test.log"
    log.write_text(out.stdout + out.stderr)
    for line in (out.stdout + out.stderr).splitlines():
        if "[DAG TEST] end task task_id=" in line:
            task = line.split("task_id=")[1].split()[0]
            err.print(f"      airflow task {task}: done")  # type: ignore[attr-defined]
    if out.returncode != 0:
        raise ScoringFailure(
            f"airflow dags test failed (exit {out.returncode}); log: {log}", job=job_name
        )
    rows = [
        r
        for r in find_lineage(platform.lineage_table, job=job_name, ds=day, status="succeeded")
        if r["airflow_dag_id"] == f"score_{job_name}"
    ]
    if not rows:
        raise ScoringFailure(f"the Airflow run left no lineage row; log: {log}", job=job_name)
    row = rows[-1]
    return RunResult(
        job=job_name,
        ds=day,
        run_id=row["run_id"],
        status="succeeded",
        rows=row["output_rows"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        input_table=row["input_table"],
        input_version=row["input_version"],
        output_table=row["output_table"],
        output_version=row["output_version"],
        seconds=time.perf_counter() - started,
    )


def run_demo(
    platform: PlatformConfig,
    *,
    job_name: str = "churn",
    days: int = 5,
    rows: int = 200_000,
    as_json: bool = False,
) -> dict[str, object]:
    """``make demo``: model, features, one scoring run per day, a summary and two queries."""
    from rich.console import Console

    from lakescore.config import load_job

    started = time.perf_counter()
    # Wide enough for the tables when piped (rich assumes 80 columns without a terminal).
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 140, quiet=as_json)
    err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)
    job = load_job(job_name, platform=platform)

    err.print(
        f"[bold]1/4[/] model: training + registering {job.model.name}@{job.model.alias or 'champion'}"
    )
    registered = train_and_register(platform, job.model.name, alias=job.model.alias or "champion")
    err.print(
        f"     {'registered' if registered.created else 'reusing'} {registered.name} "
        f"v{registered.version} (held-out AUC {registered.auc:.3f})"
    )

    day_list = demo_days(days)
    err.print(f"[bold]2/4[/] features: {days} days x {rows:,} rows -> {job.features.table}")
    for day, fresh in write_feature_partitions(job, day_list, rows):
        err.print(f"     {day}: {'written' if fresh else 'already there'}")

    err.print(
        f"[bold]3/4[/] scoring {days} partitions: {days - 1} with the scoring job in one Spark "
        f"session, the last one through Airflow (`airflow dags test score_{job.name}`)"
    )
    results = _score_demo_days(platform, job, day_list, err)
    out.print(_summary_table(job, results))

    err.print('[bold]4/4[/] analyst queries (paste into `lakescore sql "..."`)')
    answers = _analyst_queries(platform, job, day_list[-1], out)

    elapsed = time.perf_counter() - started
    out.print(
        f"\n[bold green]demo done[/] in {elapsed:.0f}s: {sum(r.rows for r in results):,} rows scored "
        f"with {registered.name} v{registered.version}.\n"
        f"  predictions: {job.output.table}\n  lineage:     {platform.lineage_table}\n"
        f"  try: .venv/bin/lakescore history --job {job.name}\n"
        f'       .venv/bin/lakescore sql "select ds, count(*), avg(score) from scores_{job.name} group by ds order by ds"'
    )
    report = {"results": [r.to_dict() for r in results], "answers": answers, "seconds": elapsed}
    if as_json:
        print(json.dumps(report, default=str))
    return report


def _score_demo_days(
    platform: PlatformConfig, job: ScoringJob, day_list: list[date], err: Any
) -> list[RunResult]:
    """Every day but the last through the scoring job in one Spark session; the last one through
    Airflow (``airflow dags test``)."""
    from lakescore.run import score_partition
    from lakescore.spark import get_spark_session
    from lakescore.terminal import RichProgress

    results = []
    if len(day_list) > 1:
        spark = get_spark_session(platform, job.spark_profile, app_name="lakescore-demo")
        for day in day_list[:-1]:
            progress = RichProgress(quiet=False)
            try:
                results.append(
                    score_partition(job, day, platform=platform, spark=spark, progress=progress)
                )
            finally:
                progress.close()
        spark.stop()
    results.append(score_through_airflow(platform, job.name, day_list[-1], err))
    return results


def _summary_table(job: ScoringJob, results: list[RunResult]) -> Any:
    """One line per published day: rows, model, table version, seconds, rows/s."""
    from rich.table import Table

    summary = Table(title=f"published {job.output.table}")
    for column in ("ds", "rows", "model", "table version", "seconds", "rows/s"):
        summary.add_column(column)
    for r in results:
        summary.add_row(
            r.ds.isoformat(),
            f"{r.rows:,}",
            f"{r.model_name} v{r.model_version}",
            str(r.output_version),
            f"{r.seconds:.1f}",
            f"{r.rows_per_s:,.0f}",
        )
    return summary


def _analyst_queries(
    platform: PlatformConfig, job: ScoringJob, last_day: date, out: Any
) -> dict[str, list[dict[str, object]]]:
    """The two queries an analyst would ask first, printed with their answers (DuckDB)."""
    from rich.table import Table

    from lakescore import api

    queries = {
        "scores of one customer over time": ENTITY_QUERY.format(job=job.name),
        "lineage of one partition": LINEAGE_QUERY.format(job=job.name, ds=last_day.isoformat()),
    }
    con = api.connect(platform)
    answers: dict[str, list[dict[str, object]]] = {}
    for title, query in queries.items():
        rel = con.sql(query)
        answers[title] = [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
        out.print(f"\n[bold]-- {title}[/]\n{query};")
        table = Table()
        for column in rel.columns:
            table.add_column(column)
        for row in answers[title]:
            table.add_row(*[str(v) for v in row.values()])
        out.print(table)
    return answers
