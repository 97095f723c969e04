"""The batch-window check of the scoring DAG, through `airflow dags test`: a partition 7x the
usual size is flagged by wait_for_partition (a WARNING in the task log and a `window_check`
lineage row) before score_and_publish starts. The history it forecasts from is real: scoring
runs of the same job in this test session."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakescore.local.airflow_local import airflow_bin, airflow_env, prepare
from lakescore.ops.forecast import check_window
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = pytest.mark.integration
NAME = "gov_window"
FACTOR = 7


def _seven_times_bigger_last_day(t: pa.Table) -> pa.Table:
    """Days 0 and 1 as usual; day 2 holds FACTOR copies of its customers (new ids)."""
    last = t.filter(pc.equal(t["ds"], pa.scalar(DAYS[2], t["ds"].type)))
    copies = [t.filter(pc.not_equal(t["ds"], pa.scalar(DAYS[2], t["ds"].type)))]
    for i in range(FACTOR):
        ids = pc.add(last["customer_id"], pa.scalar(i * 1_000_000, last["customer_id"].type))
        copies.append(
            last.set_column(last.schema.get_field_index("customer_id"), "customer_id", ids)
        )
    return pa.concat_tables(copies)


def test_an_oversized_partition_warns_before_it_is_scored(world, spark, tmp_path_factory):
    world.variant_job(NAME, _seven_times_bigger_last_day, "validation: {enabled: false}\n")
    job = world.job(NAME)
    for day in (DAYS[0], DAYS[1], DAYS[0]):  # history: three runs of a usual partition
        score_partition(job, day, platform=world.platform, spark=spark)
    usual = check_window(job, world.platform, ROWS_PER_DAY).forecast
    assert usual.model.runs == 3 and usual.low is not None
    # a window three times the usual run: a usual day fits, a 7x day does not
    window_s = math.ceil(3 * usual.seconds)
    world.variant_job(
        NAME,
        _seven_times_bigger_last_day,
        f"validation: {{enabled: false}}\nschedule: {{window: {window_s}s}}\n"
        "airflow: {retries: 0}\n",
    )

    # the CLI says the same thing, from the Delta log's row counts (no JVM)
    usual_day = _lakescore(world, "forecast", "--job", NAME, "--ds", DAYS[1].isoformat(), "--json")
    assert usual_day.returncode == 0, usual_day.stderr
    assert json.loads(usual_day.stdout)["exceeds"] is False
    big_day = _lakescore(world, "forecast", "--job", NAME, "--ds", DAYS[2].isoformat(), "--json")
    big = json.loads(big_day.stdout)
    assert big["exceeds"] is True and big["rows"] == FACTOR * ROWS_PER_DAY
    assert "warning:" in big_day.stderr and "EXCEEDS the batch window" in big_day.stderr

    env = airflow_env(
        tmp_path_factory.mktemp("airflow_home_window"),
        conf_dir=world.conf_dir,
        extra={"LAKESCORE_DEADLINES": "off"},
    )
    prepare(env)
    out = subprocess.run(
        [airflow_bin(), "dags", "test", f"score_{NAME}", DAYS[2].isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    logs = out.stdout + out.stderr
    assert out.returncode == 0, logs[-4000:]  # a warning, not a failure (on_window_overflow: warn)
    warning = logs.index("lakescore BATCH WINDOW")
    assert "EXCEEDS the batch window" in logs[warning : warning + 500]
    assert warning < logs.index("starting task_id=score_and_publish")

    (row,) = [r for r in lineage_rows(world, job=NAME, action="window_check")]
    assert row["status"] == "warned" and row["ds"] == DAYS[2]
    assert row["airflow_dag_id"] == f"score_{NAME}"
    assert row["airflow_task_id"] == "wait_for_partition"
    assert row["input_rows"] == FACTOR * ROWS_PER_DAY
    forecast = json.loads(row["details"])["forecast"]
    assert forecast["exceeds"] and forecast["window_s"] == window_s
    scored = lineage_rows(world, job=NAME, action="score", ds=DAYS[2], status="succeeded")
    assert scored and scored[-1]["output_rows"] == FACTOR * ROWS_PER_DAY


def _lakescore(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lakescore"), "--conf", str(world.conf_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAKESCORE_CONF": str(world.conf_dir)},
    )
