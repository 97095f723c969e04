"""`airflow dags test` of the scoring DAG with a warm driver configured: the validate and score
tasks run in the driver's Spark application (no spark-submit), their progress is in the task
log, and the lineage rows carry the tasks' Airflow ids, exactly as through spark-submit."""

from __future__ import annotations

import json
import subprocess

import pytest

from lakescore.lakehouse import tables
from lakescore.local.airflow_local import airflow_bin, airflow_env, prepare
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = pytest.mark.integration


def test_dags_test_runs_the_scoring_tasks_on_the_warm_driver(world, warm_driver, tmp_path):
    # a job of its own (a copy of churn's features), so no other test's rows are in the way
    world.variant_job("drv_flow", lambda table: table, "airflow: {retries: 0}\n")
    env = airflow_env(
        tmp_path / "airflow_home",
        conf_dir=world.conf_dir,
        extra={
            "LAKESCORE_DEADLINES": "off",  # apache/airflow#73428, see factory.py
            "LAKESCORE_DRIVER_URL": warm_driver.url,
            "LAKESCORE_DRIVER_TOKEN": warm_driver.token,
        },
    )
    prepare(env)
    app_id = warm_driver.client().health()["spark_app_id"]
    out = subprocess.run(
        [airflow_bin(), "dags", "test", "score_drv_flow", DAYS[2].isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = out.stdout + out.stderr
    assert out.returncode == 0, logs[-4000:]
    assert "lakescore driver not used" not in logs
    assert logs.count(f"lakescore driver at {warm_driver.url}") == 2  # validate + score
    assert "driver: [validate] passed" in logs and "driver: [publish]" in logs

    rows = [
        r
        for r in lineage_rows(world, ds=DAYS[2], job="drv_flow")
        if r["airflow_dag_id"] == "score_drv_flow" and r["spark_app_id"] == app_id
    ]
    validate, score = (
        [r for r in rows if r["action"] == action][-1] for action in ("validate", "score")
    )
    assert validate["airflow_run_id"] == score["airflow_run_id"]
    assert score["airflow_run_id"].startswith("manual__")
    assert (validate["airflow_task_id"], score["airflow_task_id"]) == (
        "validate_partition",
        "score_and_publish",
    )
    assert score["status"] == "succeeded" and score["airflow_try_number"] == 1
    assert json.loads(score["details"])["validated_by"] == validate["run_id"]
    published = tables.read_table(
        world.job("drv_flow").output.table, partition_column="ds", start=DAYS[2], end=DAYS[2]
    )
    assert published.num_rows == ROWS_PER_DAY
    assert set(published["run_id"].to_pylist()) == {score["run_id"]}
    assert "record_lineage" in logs


def test_the_driver_request_carries_the_spark_submit_arguments_and_the_task_ids(world):
    """What each scoring operator would hand spark-submit, it hands the driver (rendered
    arguments, the platform's conf folder, the task's profile and Airflow ids)."""
    from types import SimpleNamespace

    from lakescore_airflow.operators import ScorePartitionOperator, ScoreRangeOperator

    context = {"ti": SimpleNamespace(dag_id="d", run_id="r", task_id="t", try_number=2)}
    common = {"job_name": "churn", "model_version": "3", "profile": "local", "conn_prefix": "c_"}
    score = ScorePartitionOperator(
        task_id="score", ds="2026-11-20", input_version="7", shadow="off", **common
    )
    body = score._driver_request(world.platform, context)
    assert body.model_dump(exclude={"airflow"}) == {
        "job": "churn",
        "step": "score",
        "ds": "2026-11-20",
        "from_ds": None,
        "to_ds": None,
        "model_version": 3,
        "input_version": 7,
        "validated": True,
        "shadow": False,
        "conf_dir": world.platform.conf_dir,
        "profile": "local",
    }
    assert body.airflow.model_dump() == {
        "dag_id": "d",
        "run_id": "r",
        "task_id": "t",
        "try_number": 2,
    }
    validate = ScorePartitionOperator(task_id="v", step="validate", ds="2026-11-20", **common)
    body = validate._driver_request(world.platform, context)
    assert (body.step, body.validated, body.input_version) == ("validate", False, None)
    chunk = {"from": "2026-11-01", "to": "2026-11-07"}
    ranged = ScoreRangeOperator(task_id="range", chunk=chunk, **common)._driver_request(
        world.platform, context
    )
    assert (ranged.ds, ranged.from_ds, ranged.to_ds) == (None, "2026-11-01", "2026-11-07")
