"""The warm driver (``lakescore driver``) as a real process on a free loopback port, with its
own Spark session, the world's MLflow registry and Delta tables: what it serves, what it
refuses (so callers fall back), and that runs through it are the library's runs: lineage rows
with the caller's Airflow ids, validation reused, one Spark application for every run."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from lakescore.driver.client import DriverClient, DriverUnavailable
from lakescore.driver.protocol import RunBody, TaskIds
from lakescore.lakehouse import tables
from tests.conftest import DAYS, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration


def _ids(run: str, task: str) -> TaskIds:
    return TaskIds(dag_id="score_drv", run_id=run, task_id=task, try_number=1)


def test_health_and_refusals_that_send_callers_back_to_spark_submit(world: World, warm_driver):
    client = warm_driver.client()
    health = client.health()
    assert health["status"] == "ok" and health["profile"] == "local"
    assert health["conf_dir"] == str(world.conf_dir.resolve())
    assert health["spark_app_id"] and health["spark_master"] == "local[2]"
    assert {"uptime_s", "runs_served", "code_version", "warm_seconds"} <= set(health)

    body = RunBody(job="churn", ds=DAYS[0].isoformat(), conf_dir=str(world.conf_dir))
    with pytest.raises(DriverUnavailable, match="HTTP 401"):  # the token is required
        DriverClient(warm_driver.url).run(body)
    elsewhere = body.model_copy(update={"conf_dir": str(world.root)})
    with pytest.raises(DriverUnavailable, match=r"HTTP 409 conf folder .* is not this driver's"):
        client.run(elsewhere)
    other_profile = body.model_copy(update={"profile": "standalone"})
    with pytest.raises(DriverUnavailable, match="Spark profile 'standalone'"):
        client.run(other_profile)
    with pytest.raises(DriverUnavailable, match="no driver at"):  # nothing listens there
        DriverClient("http://127.0.0.1:9", health_timeout_s=1).health()
    assert client.health()["runs_served"] == health["runs_served"]  # nothing ran


def _spoil_one_row(table: pa.Table) -> pa.Table:
    """DAYS[1]: monthly_charges = +inf in one row (bad input: no retry helps)."""
    charges = table["monthly_charges"].to_pylist()
    charges[table["ds"].to_pylist().index(DAYS[1])] = float("inf")
    at = table.schema.get_field_index("monthly_charges")
    return table.set_column(at, "monthly_charges", pa.array(charges, pa.float64()))


def test_bad_input_exits_2_with_one_line_and_nothing_published(world: World, warm_driver):
    world.variant_job("drv_bad", _spoil_one_row)
    job = world.job("drv_bad")
    events: list[dict] = []
    outcome = warm_driver.client().run(
        RunBody(job="drv_bad", ds=DAYS[1].isoformat(), airflow=_ids("manual__bad", "score")),
        on_event=events.append,
    )
    assert outcome.exit_code == 2 and outcome.status == "failed"
    assert "\n" not in outcome.error
    assert "'drv_bad'" in outcome.error and "2026-11-19" in outcome.error
    assert "monthly_charges" in outcome.error
    assert "Traceback" not in json.dumps(events) and "at org.apache" not in json.dumps(events)
    assert not tables.table_exists(job.output.table)  # nothing published
    (row,) = lineage_rows(world, job="drv_bad")
    assert row["status"] == "failed" and row["run_id"] == outcome.run_id
    assert row["airflow_run_id"] == "manual__bad" and row["error"].startswith(outcome.error[:40])


def test_validate_then_score_reuses_the_validation_in_one_spark_application(
    world: World, warm_driver
):
    world.variant_job("drv_good", lambda table: table)  # churn's features, its own tables
    client = warm_driver.client()
    app_id = client.health()["spark_app_id"]
    events: list[dict] = []
    validated = client.run(
        RunBody(
            job="drv_good",
            step="validate",
            ds=DAYS[0].isoformat(),
            conf_dir=str(world.conf_dir),
            profile="local",
            airflow=_ids("manual__drv1", "validate_partition"),
        ),
        on_event=events.append,
    )
    assert validated.exit_code == 0 and validated.status == "validated", validated.error
    assert events[0]["event"] == "accepted" and events[-1]["event"] == "result"
    assert any(e["event"] == "stage" and e["stage"] == "validate" for e in events)
    input_version = validated.result["input_version"]

    scored = client.run(
        RunBody(
            job="drv_good",
            ds=DAYS[0].isoformat(),
            input_version=input_version,
            validated=True,
            airflow=_ids("manual__drv1", "score_and_publish"),
        )
    )
    assert scored.exit_code == 0 and scored.status == "succeeded", scored.error
    assert scored.result["rows"] == ROWS_PER_DAY

    v_row, s_row = (
        lineage_rows(world, job="drv_good", airflow_run_id="manual__drv1", action=action)[-1]
        for action in ("validate", "score")
    )
    assert (v_row["airflow_task_id"], s_row["airflow_task_id"]) == (
        "validate_partition",
        "score_and_publish",
    )
    assert {v_row["airflow_dag_id"], s_row["airflow_dag_id"]} == {"score_drv"}
    assert s_row["airflow_try_number"] == 1 and s_row["run_id"] == scored.run_id
    details = json.loads(s_row["details"])
    assert details["validated_by"] == v_row["run_id"]  # no second Great Expectations run
    assert details["validation"]["spark_jobs"] == 0
    assert s_row["input_version"] == input_version

    second = client.run(RunBody(job="drv_good", ds=DAYS[1].isoformat(), airflow=_ids("m2", "s")))
    assert second.exit_code == 0, second.error
    rows = [lineage_rows(world, run_id=r)[-1] for r in (scored.run_id, second.run_id)]
    assert {r["spark_app_id"] for r in rows} == {v_row["spark_app_id"]} == {app_id}
    published = tables.read_table(
        world.job("drv_good").output.table, partition_column="ds", start=DAYS[0], end=DAYS[1]
    )
    by_day = {d: set() for d in DAYS[:2]}
    for day, run in zip(published["ds"].to_pylist(), published["run_id"].to_pylist(), strict=True):
        by_day[day].add(run)
    assert by_day == {DAYS[0]: {scored.run_id}, DAYS[1]: {second.run_id}}
    assert published.num_rows == 2 * ROWS_PER_DAY


def test_a_range_streams_each_partition_and_a_bad_day_fails_alone(world: World, warm_driver):
    """What a ``backfill_<job>`` chunk sends: one request, every day its own run."""
    world.variant_job("drv_bad", _spoil_one_row)  # DAYS[1] has a +inf feature
    job = world.job("drv_bad")
    events: list[dict] = []
    outcome = warm_driver.client().run(
        RunBody.model_validate(
            {
                "job": "drv_bad",
                "from": DAYS[1].isoformat(),
                "to": DAYS[2].isoformat(),
                "airflow": {"dag_id": "backfill_drv_bad", "run_id": "manual__r", "task_id": "r"},
            }
        ),
        on_event=events.append,
    )
    assert outcome.exit_code == 2 and outcome.status == "failed"  # every failure was bad input
    assert "1 of 2 partitions failed (2026-11-19)" in outcome.error and "\n" not in outcome.error
    done = [e for e in events if e["event"] == "partition"]
    assert [(e["outcome"]["ds"], e["outcome"]["status"]) for e in done] == [
        ("2026-11-19", "failed"),
        ("2026-11-20", "succeeded"),
    ]
    assert done[-1]["progress"].startswith("2/2 partitions, 1 failed")
    assert [p["status"] for p in outcome.partitions] == ["failed", "succeeded"]
    published = tables.read_table(job.output.table, partition_column="ds")
    assert set(published["ds"].to_pylist()) == {DAYS[2]}
    assert published.num_rows == ROWS_PER_DAY
    rows = lineage_rows(world, job="drv_bad", airflow_run_id="manual__r")
    assert sorted((r["ds"], r["status"]) for r in rows) == [
        (DAYS[1], "failed"),
        (DAYS[2], "succeeded"),
    ]
