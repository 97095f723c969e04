"""A real Airflow deployment (lakescore.local.deployment): PostgreSQL 15 (initdb in a temp dir,
free loopback port), `airflow db migrate`, api-server + scheduler + dag-processor + triggerer
with LocalExecutor.

Through it: a run triggered with `--conf`, a 2-day `airflow backfill create` overlapping it, a
scheduled run whose partition never arrives (fails at the wait task, nothing published, lineage
+ deadline alert recorded). What was published is checked with delta-rs, not through Airflow.

Where the time goes: every validate/score task is its own spark-submit (~30-40 s each on a quiet
2-core machine, at most 2 at a time: the Spark pool), so the test is kept to 7 Spark
applications (the failing job: 1; the triggered run and the 2 backfill runs: 2 each). The wait
task of the missing partition gives up after its second poke, and nothing else polls slowly;
the floor is the 90 s deadline of the scheduled run, counted from the unpause.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from lakescore.lakehouse import tables
from lakescore.local.deployment import AirflowDeployment, airflow_deployment, postgres_missing
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration
BACKFILL_DAYS = DAYS[:2]  # DAYS[1] is also the day of the triggered run


def _null_keys_on_second_day(table):
    import pyarrow as pa

    keys = table["customer_id"].to_pylist()
    days = table["ds"].to_pylist()
    nulled = [
        None if d == DAYS[1] and i % 100 == 0 else k
        for i, (k, d) in enumerate(zip(keys, days, strict=True))
    ]
    return table.set_column(
        table.schema.get_field_index("customer_id"), "customer_id", pa.array(nulled, pa.int64())
    )


SCHED_JOB = """\
name: churn
model: {{name: {model}, alias: champion}}
features: {{table: features/churn, entity_keys: [customer_id]}}
output: {{table: scores/churn}}
schedule:
  cron: "@daily"
  start_date: 2026-11-01
  catchup: false
  deadline: 90s
airflow:
  retries: 0
  wait_timeout: 10s  # below the poke interval: the missing partition fails at the 2nd poke
  wait_poke_interval: 30s  # the shortest lakescore accepts
  max_active_runs: 4
"""


@pytest.fixture(scope="module")
def deployment(world, tmp_path_factory) -> Iterator[AirflowDeployment]:
    """Airflow's four services on a PostgreSQL of their own, stopped (whole process groups)
    afterwards: lakescore.local.deployment, the same recipe bench/backfill.py runs."""
    if why := postgres_missing():
        pytest.fail(why)
    home = tmp_path_factory.mktemp("airflow_sched")
    conf = home / "conf"
    (conf / "jobs").mkdir(parents=True)
    shutil.copy(world.conf_dir / "platform.yaml", conf / "platform.yaml")
    (conf / "jobs" / "churn.yaml").write_text(SCHED_JOB.format(model=world.model_name))
    # a second job whose feature table breaks validation on DAYS[1] (null entity keys)
    world.variant_job("sched_bad", _null_keys_on_second_day)
    bad = SCHED_JOB.format(model=world.model_name).replace("name: churn\n", "name: sched_bad\n", 1)
    bad = bad.replace("features/churn", "features/sched_bad").replace(
        "scores/churn", "scores/sched_bad"
    )
    # manual runs only: no scheduled run of its own to wait (and poke) alongside the others
    bad = bad.replace('cron: "@daily"', "cron: null")
    (conf / "jobs" / "sched_bad.yaml").write_text(bad)
    with airflow_deployment(home, conf, dags=["score_churn"]) as dep:
        yield dep
    assert not dep.survivors, f"left after teardown: {dep.survivors}"


def _finished(dep: AirflowDeployment, run_ids: set[str], dag_id: str = "score_churn"):
    runs = [r for r in dep.dag_runs(dag_id) if r.run_id in run_ids]
    return runs if runs and all(r.state in ("success", "failed") for r in runs) else None


def _wait(dep: AirflowDeployment, check, seconds: float, what: str):
    return wait_until(check, seconds, what, details=dep.log_tails)


def test_trigger_backfill_and_a_missing_partition(world, deployment):
    dep = deployment
    output = world.job().output.table
    dep.airflow("dags", "unpause", "score_churn")

    # (3) a partition that fails validation: the run fails at validate_partition, nothing
    # is published (started first so it runs alongside the others)
    dep.wait_for_dag("score_sched_bad", 120)
    dep.airflow("dags", "unpause", "score_sched_bad")
    dep.airflow(
        "dags", "trigger", "score_sched_bad", "--conf", json.dumps({"ds": DAYS[1].isoformat()})
    )

    # (1) a run triggered with --conf scores exactly that partition
    dep.airflow("dags", "trigger", "score_churn", "--conf", json.dumps({"ds": DAYS[1].isoformat()}))
    triggered = _wait(
        dep,
        lambda: [r for r in dep.dag_runs("score_churn") if r.run_type == "manual"],
        60,
        "the trigger",
    )
    manual_id = triggered[0].run_id

    # (2) a 2-day backfill that overlaps the triggered run (DAYS[1])
    dep.airflow(
        "backfill",
        "create",
        "--dag-id",
        "score_churn",
        "--from-date",
        DAYS[0].isoformat(),
        "--to-date",
        BACKFILL_DAYS[-1].isoformat(),
        "--max-active-runs",
        "2",
    )
    backfill = _wait(
        dep,
        lambda: [r for r in dep.dag_runs("score_churn") if r.run_type == "backfill"],
        60,
        "the backfill runs",
    )
    backfill_ids = {r.run_id for r in backfill}
    assert sorted(r.logical_date.date() for r in backfill) == BACKFILL_DAYS

    finished = _wait(
        dep,
        lambda: _finished(dep, backfill_ids | {manual_id}),
        900,
        "the triggered and backfill runs to finish",
    )
    states = {r.run_id: r.state for r in finished}
    assert set(states.values()) == {"success"}, {
        k: dep.task_states("score_churn", k) for k in states
    }

    for run_id in backfill_ids | {manual_id}:
        assert set(dep.task_states("score_churn", run_id).values()) == {"success"}
    by_run = {}
    for row in lineage_rows(world, status="succeeded"):
        if row["airflow_run_id"] in states:
            by_run.setdefault(row["airflow_run_id"], []).append(row)
    assert set(by_run) == set(states)
    assert {rows[0]["ds"] for run_id, rows in by_run.items() if run_id in backfill_ids} == set(
        BACKFILL_DAYS
    )
    assert by_run[manual_id][0]["ds"] == DAYS[1]
    for day in BACKFILL_DAYS:
        rows = tables.read_table(output, partition_column="ds", start=day, end=day)
        assert rows.num_rows == ROWS_PER_DAY  # reruns replaced; nothing duplicated
        assert len(set(rows["customer_id"].to_pylist())) == ROWS_PER_DAY

    bad_runs = [r for r in dep.dag_runs("score_sched_bad") if r.run_type == "manual"]
    (bad,) = _wait(
        dep,
        lambda: _finished(dep, {bad_runs[0].run_id}, "score_sched_bad"),
        300,
        "the run that fails validation",
    )
    assert bad.state == "failed"
    bad_tasks = dep.task_states("score_sched_bad", bad.run_id)
    assert bad_tasks["validate_partition"] == "failed"
    assert bad_tasks["score_and_publish"] == "upstream_failed"
    assert not tables.table_exists(str(world.root / "warehouse" / "scores" / "sched_bad"))
    (why,) = [
        r
        for r in lineage_rows(world, job="sched_bad", status="failed")
        if r["airflow_run_id"] == bad.run_id
    ]
    assert why["action"] == "validate" and why["airflow_task_id"] == "validate_partition"
    assert "expect_column_values_to_not_be_null(customer_id)" in why["error"]

    # (4) the scheduled run for "today" waits for a partition that never lands
    scheduled = [r for r in dep.dag_runs("score_churn") if r.run_type == "scheduled"]
    assert scheduled, "unpausing should have created the latest scheduled run"
    sched = _wait(dep, lambda: _finished(dep, {scheduled[0].run_id}), 300, "the scheduled run")[0]
    assert sched.state == "failed"
    tasks = dep.task_states("score_churn", sched.run_id)
    assert tasks["wait_for_partition"] == "failed"
    assert tasks["score_and_publish"] in ("upstream_failed", None)
    today = sched.logical_date.date()
    assert tables.read_table(output, partition_column="ds", start=today, end=today).num_rows == 0
    failures = [
        r
        for r in lineage_rows(world, ds=today, status="failed")
        if r["airflow_run_id"] == sched.run_id
    ]
    assert failures and failures[-1]["airflow_task_id"] == "wait_for_partition"
    assert "did not appear within" in failures[-1]["error"]

    alert = _wait(
        dep,
        lambda: [
            r
            for r in lineage_rows(world, status="deadline_missed")
            if r["airflow_run_id"] == sched.run_id
        ],
        240,
        "the deadline alert of the failed run",
    )
    assert "DEADLINE MISSED" in alert[0]["error"] and alert[0]["job"] == "churn"
    # A successful run that finished well before its deadline raised no alert (on a busy
    # machine a slow run may legitimately miss the 90 s deadline and alert: that is not checked).
    alerted = {r["airflow_run_id"] for r in lineage_rows(world, status="deadline_missed")}
    timings = dep.query(
        "select run_id, extract(epoch from end_date - queued_at) "
        "from dag_run where dag_id = 'score_churn' and state = 'success'",
    )
    quick = {run_id for run_id, seconds in timings if seconds is not None and seconds < 70}
    assert not quick & alerted
