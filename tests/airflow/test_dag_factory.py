"""The DAG files: they load fast, without heavy imports, with one DAG per job config whose
shape and settings come from the config; a broken config is an import error naming the file
and the key; the run's partition is decided and validated before anything is read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lakescore.errors import BadInputError
from lakescore.local.airflow_local import REPO

HEAVY = ("pyspark", "mlflow", "great_expectations", "deltalake", "sklearn", "duckdb", "pandas")


def _import_dag_file(conf_dir: Path, tmp_path: Path, extra_env: dict[str, str] | None = None):
    """Import dags/lakescore_scoring.py in a fresh interpreter; report DAGs, heavy modules, time."""
    probe = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(REPO / "plugins")!r})
        start = time.perf_counter()
        import importlib.util
        spec = importlib.util.spec_from_file_location("scoring", {str(REPO / "dags" / "lakescore_scoring.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seconds = time.perf_counter() - start
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        dags = {{k: [t.task_id for t in v.tasks] for k, v in vars(module).items() if k.startswith("score_")}}
        print(json.dumps({{"seconds": seconds, "heavy": heavy, "dags": dags}}))
        """
    )
    env = {
        **os.environ,
        "LAKESCORE_CONF": str(conf_dir),
        "AIRFLOW_HOME": str(tmp_path / "af"),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )


def test_dag_file_imports_no_heavy_modules_and_builds_one_dag_per_job(world, tmp_path):
    out = _import_dag_file(world.conf_dir, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"heavy modules imported at parse time: {report['heavy']}"
    job_files = sorted(p.stem for p in (world.conf_dir / "jobs").glob("*.yaml"))
    assert sorted(report["dags"]) == [f"score_{name}" for name in job_files]
    assert report["dags"]["score_churn"] == [
        "resolve_partition",
        "wait_for_partition",
        "resolve_model",
        "validate_partition",
        "score_and_publish",
        "record_lineage",
    ]
    # Airflow's own import is most of it; the budget catches a regression to heavy imports.
    assert report["seconds"] < 15


def test_dagbag_has_no_import_errors_for_the_shipped_conf(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    os.environ["LAKESCORE_CONF"] = str(REPO / "conf")
    try:
        bag = DagBag(dag_folder=str(REPO / "dags"))
    finally:
        os.environ.pop("LAKESCORE_CONF", None)
    assert bag.import_errors == {}
    assert {"score_churn", "backfill_churn"} <= set(bag.dag_ids)


def test_backfill_dag_maps_range_runs_over_the_plans_chunks(world):
    from lakescore_airflow.factory import build_backfill_dag

    dag = build_backfill_dag(world.job(), world.platform)
    assert dag.dag_id == "backfill_churn" and dag.schedule is None
    # score_range also reads the plan (its chunks) as the mapped XCom
    assert dag.get_task("plan_backfill").downstream_task_ids == {"resolve_model", "score_range"}
    assert dag.get_task("resolve_model").downstream_task_ids == {"score_range"}
    score = dag.get_task("score_range")
    assert (
        type(score).__name__ == "MappedOperator" and score.pool == world.platform.airflow.spark_pool
    )
    assert set(dag.params) == {"from", "to", "chunk_days", "model_version"}


def test_dag_settings_come_from_the_config(world):
    from lakescore_airflow.factory import build_dag

    job = world.job().model_copy(
        update={
            "owner": "team-x",
            "tags": ["nightly"],
            "schedule": world.job().schedule.model_copy(
                update={"cron": "30 5 * * *", "catchup": True, "deadline": timedelta(hours=2)}
            ),
        }
    )
    dag = build_dag(job, world.platform)
    assert dag.dag_id == "score_churn"
    assert dag.catchup is True
    assert set(dag.tags) >= {"lakescore", "nightly"}
    assert dag.max_active_runs == job.airflow.max_active_runs
    assert dag.timetable.expression == "30 5 * * *"
    assert dag.deadline is not None
    assert job.features.table in dag.doc_md and job.output.table in dag.doc_md
    assert "churn_test@champion" in dag.doc_md
    score = dag.get_task("score_and_publish")
    assert score.pool == world.platform.airflow.spark_pool
    assert score.execution_timeout == job.airflow.score_timeout
    assert score.owner == "team-x"
    assert score.retries == job.airflow.retries
    assert [o.uri for o in score.outlets] == [f"file://{job.output.table}"]
    assert dag.get_task("wait_for_partition").mode == "reschedule"
    assert dag.get_task("resolve_partition").downstream_task_ids == {"wait_for_partition"}
    assert dag.get_task("score_and_publish").downstream_task_ids == {"record_lineage"}
    assert dag.get_task("validate_partition").downstream_task_ids == {"score_and_publish"}
    assert dag.get_task("validate_partition").pool == world.platform.airflow.spark_pool
    score_args = dag.get_task("score_and_publish").application_args
    assert "--validated" in score_args and "--input-version" in score_args
    no_validation = build_dag(
        job.model_copy(update={"validation": job.validation.model_copy(update={"enabled": False})}),
        world.platform,
    )
    assert "validate_partition" not in no_validation.task_ids
    assert no_validation.get_task("resolve_model").downstream_task_ids == {"score_and_publish"}
    assert set(dag.params.keys()) == {"ds", "model_version"}


def test_a_broken_config_is_an_import_error_naming_file_and_key(world, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(world.conf_dir, conf)
    bad = conf / "jobs" / "churn.yaml"
    bad.write_text(bad.read_text().replace("alias: champion", "aliass: champion"))
    out = _import_dag_file(conf, tmp_path)
    assert out.returncode != 0
    assert "ConfigError" in out.stderr
    assert str(bad) in out.stderr
    assert "model.aliass" in out.stderr


def test_dagbag_reports_the_config_error(world, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    conf = tmp_path / "conf"
    shutil.copytree(world.conf_dir, conf)
    bad = conf / "jobs" / "churn.yaml"
    bad.write_text(bad.read_text() + "surprise: 1\n")
    os.environ["LAKESCORE_CONF"] = str(conf)
    try:
        bag = DagBag(dag_folder=str(REPO / "dags"))
    finally:
        os.environ.pop("LAKESCORE_CONF", None)
    (message,) = bag.import_errors.values()
    assert str(bad) in message and "surprise" in message and "unknown key" in message


# --------------------------------------------------------------------------- run partition


def test_partition_for_run_prefers_conf_then_logical_date_then_run_after():
    from lakescore_airflow.operators import partition_for_run

    logical = datetime(2026, 11, 20, 6, tzinfo=UTC)
    after = datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert partition_for_run({"ds": "2026-11-01"}, logical, after, 0, job="j") == date(2026, 11, 1)
    assert partition_for_run({}, logical, after, 0, job="j") == date(2026, 11, 20)
    assert partition_for_run({}, logical, after, -1, job="j") == date(2026, 11, 19)
    assert partition_for_run({}, None, after, 0, job="j") == date(2026, 11, 22)
    assert partition_for_run({"ds": None, "model_version": 3}, logical, after, 0, job="j") == date(
        2026, 11, 20
    )


@pytest.mark.parametrize(
    ("conf", "needle"),
    [
        ({"ds": "2026-02-30"}, "not a calendar day"),
        ({"ds": "2026-01-01' OR '1'='1"}, "YYYY-MM-DD"),
        ({"dss": "2026-11-01"}, "unknown key(s) ['dss']"),
    ],
)
def test_partition_for_run_rejects_bad_conf(conf, needle):
    from lakescore_airflow.operators import partition_for_run

    with pytest.raises(BadInputError) as err:
        partition_for_run(conf, datetime(2026, 11, 20, tzinfo=UTC), None, 0, job="churn")
    assert needle in str(err.value) and "job 'churn'" in str(err.value)


def test_a_job_can_be_triggered_by_its_feature_tables_asset(world):
    from lakescore_airflow.factory import build_dag

    job = world.job()
    job = job.model_copy(
        update={"schedule": job.schedule.model_copy(update={"cron": "feature_asset"})}
    )
    dag = build_dag(job, world.platform)
    assets = dag.timetable.asset_condition.objects
    assert [asset.uri for asset in assets] == [f"file://{job.features.table}"]
