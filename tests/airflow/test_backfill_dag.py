"""`airflow dags test` of the backfill DAG (``backfill_<job>``): real Airflow task runner,
dynamic task mapping over chunks, real spark-submit of range runs."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from lakescore.lakehouse import tables
from lakescore.local.airflow_local import airflow_bin
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = pytest.mark.integration


def dags_test(env, conf: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [airflow_bin(), "dags", "test", "backfill_churn", "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_backfill_scores_each_day_once_in_one_spark_app_per_chunk(world, af_env):
    out = dags_test(
        af_env, {"from": DAYS[0].isoformat(), "to": DAYS[2].isoformat(), "chunk_days": 2}
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    rows = [
        r
        for r in lineage_rows(world, status="succeeded", action="score")
        if r["airflow_dag_id"] == "backfill_churn"
    ]
    assert sorted(r["ds"] for r in rows) == DAYS  # each day once
    assert {r["airflow_task_id"] for r in rows} == {"score_range"}
    # two chunks ([d0, d1], [d2]): two Spark applications, the first scoring two days
    per_app = Counter(r["spark_app_id"] for r in rows)
    assert sorted(per_app.values()) == [1, 2]
    assert {r["model_version"] for r in rows} == {world.model_v1}
    for day in DAYS:
        published = tables.read_table(
            world.job().output.table, partition_column="ds", start=day, end=day
        )
        assert published.num_rows == ROWS_PER_DAY
        (row,) = [r for r in rows if r["ds"] == day]
        assert set(published["run_id"].to_pylist()) == {row["run_id"]}


def test_a_reversed_range_fails_in_the_plan_before_any_spark(world, af_env):
    before = tables.table_version(world.job().output.table)
    out = dags_test(af_env, {"from": DAYS[2].isoformat(), "to": DAYS[0].isoformat()})
    logs = out.stdout + out.stderr
    assert "is before --from" in logs
    assert "[DAG TEST] starting task_id=score_range" not in logs
    assert tables.table_version(world.job().output.table) == before
