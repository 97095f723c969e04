"""`airflow dags test` of the scoring DAG: real Airflow task runner, real spark-submit, real
registry and tables. The published partition and the lineage row carry the Airflow ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lakescore.lakehouse import tables
from lakescore.local.airflow_local import airflow_bin
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = pytest.mark.integration


def dags_test(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [airflow_bin(), "dags", "test", "score_churn", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dags_test_publishes_the_logical_dates_partition_with_airflow_ids(world, af_env):
    before = tables.table_version(world.job().output.table)
    out = dags_test(af_env, DAYS[2].isoformat())
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]

    (row,) = [
        r
        for r in lineage_rows(world, ds=DAYS[2], status="succeeded", action="score")
        if r["airflow_dag_id"] == "score_churn"
    ]
    assert row["airflow_task_id"] == "score_and_publish"
    assert row["airflow_run_id"].startswith("manual__")
    assert row["airflow_try_number"] == 1
    assert row["output_rows"] == ROWS_PER_DAY
    assert row["output_version"] > (before or -1)
    published = tables.read_table(
        world.job().output.table, partition_column="ds", start=DAYS[2], end=DAYS[2]
    )
    assert published.num_rows == ROWS_PER_DAY
    assert set(published["run_id"].to_pylist()) == {row["run_id"]}
    assert "record_lineage" in out.stdout + out.stderr
    # no warm driver answered (af_env): each scoring task said so once and spark-submitted
    assert (out.stdout + out.stderr).count("lakescore driver not used (no driver at") == 2
    # The score task reused the validate task's outcome: no suite run, no Spark job for it,
    # no cached partition, so it read the files with the fast reader.
    details = json.loads(row["details"])
    assert details["validated_by"] and details["validated_by"] != row["run_id"]
    assert details["validation"]["spark_jobs"] == 0
    assert details["score_reader"] == "files"

    # OpenLineage: Airflow's event names the datasets and the model; Spark's joins it.
    airflow_events = _events(Path(af_env["AIRFLOW_HOME"]) / "openlineage" / "events.jsonl")
    (complete,) = [
        e
        for e in airflow_events
        if e["eventType"] == "COMPLETE"
        and e["job"]["name"] == "score_churn.score_and_publish"
        and e["run"]["facets"].get("lakescore_model", {}).get("lakescore_run_id") == row["run_id"]
    ]
    assert [d["name"] for d in complete["inputs"]] == [world.job().features.table]
    assert [d["name"] for d in complete["outputs"]] == [world.job().output.table]
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == str(
        row["output_version"]
    )
    assert complete["run"]["facets"]["lakescore_model"]["version"] == world.model_v1
    spark_events = _events(Path(world.platform.openlineage.file))
    children = [
        e
        for e in spark_events
        if e["run"]["facets"].get("parent", {}).get("run", {}).get("runId")
        == complete["run"]["runId"]
    ]
    assert children, "no Spark OpenLineage event points at the Airflow task run as its parent"


def _events(path: Path) -> list[dict]:
    assert path.is_file(), f"no OpenLineage events at {path}"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_conf_pins_partition_and_model_version(world, af_env):
    conf = json.dumps({"ds": DAYS[0].isoformat(), "model_version": world.model_v1})
    out = dags_test(af_env, "2026-11-25", "-c", conf)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    rows = [
        r
        for r in lineage_rows(world, ds=DAYS[0], status="succeeded", action="score")
        if r["airflow_dag_id"] == "score_churn"
    ]
    assert rows[-1]["model_version"] == world.model_v1
    assert rows[-1]["model_alias"] is None  # pinned, not resolved through the alias


def test_unknown_conf_key_fails_the_run_before_anything_is_read(world, af_env):
    before = tables.table_version(world.job().output.table)
    out = dags_test(af_env, "2026-11-25", "-c", json.dumps({"dss": "2026-11-18"}))
    logs = out.stdout + out.stderr
    assert "unknown key(s) ['dss']" in logs
    assert "score_and_publish" not in [
        line.split("task_id=")[1].split()[0]
        for line in logs.splitlines()
        if "[DAG TEST] starting task_id=" in line
    ]
    assert tables.table_version(world.job().output.table) == before
    failed = [
        r for r in lineage_rows(world, status="failed") if r["airflow_dag_id"] == "score_churn"
    ]
    assert failed and failed[-1]["airflow_task_id"] == "resolve_partition"
    assert "unknown key(s) ['dss']" in failed[-1]["error"]
