"""A real Airflow deployment: PostgreSQL 15 (initdb in a temp dir, free loopback port),
`airflow db migrate`, api-server + scheduler + dag-processor + triggerer with LocalExecutor.

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
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakescore.lakehouse import tables
from lakescore.local.airflow_local import airflow_bin, airflow_env, prepare
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows
from tests.support.processes import free_port, stop_groups, wait_until

pytestmark = pytest.mark.integration
PG_BIN = Path("/usr/lib/postgresql/15/bin")
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


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: run `make system-deps`")
    data = Path(tempfile.mkdtemp(prefix="lakescore-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data / "db"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        ),
        **run,
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data / "db"),
                "-l",
                str(data / "log"),
                "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
                "-w",
                "start",
            ]
        ),
        **run,
    )
    try:
        subprocess.run(
            _as_postgres(
                ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "airflow"]
            ),
            **run,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow"
    finally:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"]
            ),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(data, ignore_errors=True)


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
def deployment(world, postgres, tmp_path_factory) -> Iterator[dict]:
    """Airflow's four services on PostgreSQL, stopped (whole process groups) afterwards."""
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
    port = free_port()
    env = airflow_env(
        home,
        conf_dir=conf,
        db_url=postgres,
        extra={
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # Both DAGs come from one file that does not change during the test: parse it once
            # instead of every 30 s (a parse is a process start on a busy 2-core machine).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "900",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        },
    )
    prepare(env)
    processes = []
    logs = home / "logs-services"
    logs.mkdir()
    for service in (["api-server"], ["scheduler"], ["dag-processor"], ["triggerer"]):
        log = (logs / f"{service[0]}.log").open("w")
        processes.append(
            subprocess.Popen(
                [airflow_bin(), *service],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deployment = {"env": env, "home": home, "conf": conf, "db": postgres, "logs": logs}
    try:
        _wait(
            lambda: _dag_parsed(postgres, "score_churn"),
            180,
            "the dag-processor to parse score_churn",
            logs,
        )
        yield deployment
    finally:
        # SIGTERM, then SIGKILL after 30 s: children of a service (task runners, api workers)
        # may outlive their leader briefly
        survivors = stop_groups(processes, timeout=30)
        assert not survivors, f"process groups {survivors} survived teardown"


def _query(db_url: str, sql: str, *params) -> list[tuple]:
    import psycopg2

    dsn = db_url.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _dag_parsed(db_url: str, dag_id: str) -> bool:
    try:
        return bool(_query(db_url, "select 1 from dag where dag_id = %s", dag_id))
    except Exception:
        return False


def _wait(check, seconds: float, what: str, logs: Path | None = None):
    def tail() -> str:
        return "".join(
            f"\n--- {f.name}\n" + "\n".join(f.read_text().splitlines()[-15:])
            for f in sorted(logs.glob("*.log"))
        )

    return wait_until(check, seconds, what, details=tail if logs else None)


def _airflow(dep: dict, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [airflow_bin(), *args], env=dep["env"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out


def _runs(dep: dict, dag_id: str = "score_churn") -> list[dict]:
    rows = _query(
        dep["db"],
        "select run_id, state, conf, run_type, logical_date from dag_run "
        "where dag_id = %s order by id",
        dag_id,
    )
    return [
        {"run_id": r[0], "state": r[1], "conf": r[2], "run_type": r[3], "logical_date": r[4]}
        for r in rows
    ]


def _task_states(dep: dict, run_id: str, dag_id: str = "score_churn") -> dict[str, str]:
    rows = _query(
        dep["db"],
        "select task_id, state from task_instance where dag_id = %s and run_id = %s",
        dag_id,
        run_id,
    )
    return dict(rows)


def _finished(dep: dict, run_ids: set[str], dag_id: str = "score_churn"):
    runs = [r for r in _runs(dep, dag_id) if r["run_id"] in run_ids]
    return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None


def test_trigger_backfill_and_a_missing_partition(world, deployment):
    dep = deployment
    output = world.job().output.table
    _airflow(dep, "dags", "unpause", "score_churn")

    # (3) a partition that fails validation: the run fails at validate_partition, nothing
    # is published (started first so it runs alongside the others)
    _wait(lambda: _dag_parsed(dep["db"], "score_sched_bad"), 120, "score_sched_bad to be parsed")
    _airflow(dep, "dags", "unpause", "score_sched_bad")
    _airflow(
        dep, "dags", "trigger", "score_sched_bad", "--conf", json.dumps({"ds": DAYS[1].isoformat()})
    )

    # (1) a run triggered with --conf scores exactly that partition
    _airflow(
        dep, "dags", "trigger", "score_churn", "--conf", json.dumps({"ds": DAYS[1].isoformat()})
    )
    triggered = _wait(
        lambda: [r for r in _runs(dep) if r["run_type"] == "manual"], 60, "the trigger"
    )
    manual_id = triggered[0]["run_id"]

    # (2) a 2-day backfill that overlaps the triggered run (DAYS[1])
    _airflow(
        dep,
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
        lambda: [r for r in _runs(dep) if r["run_type"] == "backfill"],
        60,
        "the backfill runs",
        dep["logs"],
    )
    backfill_ids = {r["run_id"] for r in backfill}
    assert sorted(r["logical_date"].date() for r in backfill) == BACKFILL_DAYS

    finished = _wait(
        lambda: _finished(dep, backfill_ids | {manual_id}),
        900,
        "the triggered and backfill runs to finish",
        dep["logs"],
    )
    states = {r["run_id"]: r["state"] for r in finished}
    assert set(states.values()) == {"success"}, {k: _task_states(dep, k) for k in states}

    for run_id in backfill_ids | {manual_id}:
        assert set(_task_states(dep, run_id).values()) == {"success"}
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

    bad_runs = [r for r in _runs(dep, "score_sched_bad") if r["run_type"] == "manual"]
    (bad,) = _wait(
        lambda: _finished(dep, {bad_runs[0]["run_id"]}, "score_sched_bad"),
        300,
        "the run that fails validation",
        dep["logs"],
    )
    assert bad["state"] == "failed"
    bad_tasks = _task_states(dep, bad["run_id"], "score_sched_bad")
    assert bad_tasks["validate_partition"] == "failed"
    assert bad_tasks["score_and_publish"] == "upstream_failed"
    assert not tables.table_exists(str(world.root / "warehouse" / "scores" / "sched_bad"))
    (why,) = [
        r
        for r in lineage_rows(world, job="sched_bad", status="failed")
        if r["airflow_run_id"] == bad["run_id"]
    ]
    assert why["action"] == "validate" and why["airflow_task_id"] == "validate_partition"
    assert "expect_column_values_to_not_be_null(customer_id)" in why["error"]

    # (4) the scheduled run for "today" waits for a partition that never lands
    scheduled = [r for r in _runs(dep) if r["run_type"] == "scheduled"]
    assert scheduled, "unpausing should have created the latest scheduled run"
    sched = _wait(lambda: _finished(dep, {scheduled[0]["run_id"]}), 300, "the scheduled run")[0]
    assert sched["state"] == "failed"
    tasks = _task_states(dep, sched["run_id"])
    assert tasks["wait_for_partition"] == "failed"
    assert tasks["score_and_publish"] in ("upstream_failed", None)
    today = sched["logical_date"].date()
    assert tables.read_table(output, partition_column="ds", start=today, end=today).num_rows == 0
    failures = [
        r
        for r in lineage_rows(world, ds=today, status="failed")
        if r["airflow_run_id"] == sched["run_id"]
    ]
    assert failures and failures[-1]["airflow_task_id"] == "wait_for_partition"
    assert "did not appear within" in failures[-1]["error"]

    alert = _wait(
        lambda: [
            r
            for r in lineage_rows(world, status="deadline_missed")
            if r["airflow_run_id"] == sched["run_id"]
        ],
        240,
        "the deadline alert of the failed run",
        dep["logs"],
    )
    assert "DEADLINE MISSED" in alert[0]["error"] and alert[0]["job"] == "churn"
    # A successful run that finished well before its deadline raised no alert (on a busy
    # machine a slow run may legitimately miss the 90 s deadline and alert: that is not checked).
    alerted = {r["airflow_run_id"] for r in lineage_rows(world, status="deadline_missed")}
    timings = _query(
        dep["db"],
        "select run_id, extract(epoch from end_date - queued_at) "
        "from dag_run where dag_id = 'score_churn' and state = 'success'",
    )
    quick = {run_id for run_id, seconds in timings if seconds is not None and seconds < 70}
    assert not quick & alerted
