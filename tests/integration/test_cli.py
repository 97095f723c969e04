"""The command line as a user runs it: real processes, exit codes, one-line errors, JSON.

The happy path goes through ``spark-submit jobs/score.py`` with the Spark conf the platform
config produces (the way Airflow launches it), so the entry point, the conf and the session
pickup are exercised for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakescore.lakehouse import tables
from lakescore.spark import spark_conf
from tests.conftest import DAYS, REPO, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def lakescore(world: World, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lakescore"), "--conf", str(world.conf_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LAKESCORE_CONF": str(world.conf_dir)},
    )


def test_every_command_has_help_with_examples():
    for command in ["score", "sql", "history", "jobs", "demo"]:
        out = subprocess.run(
            [str(BIN / "lakescore"), command, "--help"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert "examples:" in out.stdout, command


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["score", "--job", "churn", "--ds", "2026-02-30"], "is not a calendar day"),
        (
            ["score", "--job", "churn", "--ds", "2026-01-01' OR '1'='1"],
            "not of the form YYYY-MM-DD",
        ),
        (["score", "--job", "nope", "--ds", "2026-11-20"], "unknown job"),
        (["score", "--job", "../x", "--ds", "2026-11-20"], "job names are lowercase"),
        (["score", "--job", "churn", "--ds", "2026-10-01"], "partition ds=2026-10-01 not found"),
        (["history", "--job", "nope"], "unknown job"),
    ],
)
def test_bad_input_exits_2_with_one_line(world, args, needle):
    out = lakescore(world, *args)
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert needle in errors[0]
    assert out.stderr.rstrip().endswith(errors[0].rstrip()), "the error is the last line"
    assert "Traceback" not in out.stderr


def test_verbose_shows_the_traceback(world):
    out = lakescore(world, "-v", "score", "--job", "nope", "--ds", "2026-11-20")
    assert out.returncode == 2
    assert "Traceback" in out.stderr


def test_spark_submit_entry_point_publishes_and_prints_json(world):
    conf = spark_conf(world.platform)
    command = [str(BIN / "spark-submit"), "--master", conf.pop("spark.master")]
    command += ["--jars", conf.pop("spark.jars")]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    command += [str(REPO / "jobs" / "score.py"), "--conf", str(world.conf_dir)]
    command += ["--job", "churn", "--ds", DAYS[1].isoformat(), "--json"]
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "AIRFLOW_CTX_DAG_ID": "score_churn",
        "AIRFLOW_CTX_DAG_RUN_ID": "manual__test",
        "AIRFLOW_CTX_TRY_NUMBER": "2",
    }
    # spark-submit's `--conf` would swallow ours: the job's own flag comes after the script.
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert result["rows"] == ROWS_PER_DAY
    assert result["output_version"] == tables.table_version(world.job().output.table)
    (row,) = lineage_rows(world, run_id=result["run_id"])
    assert (row["airflow_dag_id"], row["airflow_run_id"], row["airflow_try_number"]) == (
        "score_churn",
        "manual__test",
        2,
    )


def test_sql_history_and_jobs(world, spark):
    from lakescore.run import score_partition

    result = score_partition(world.job(), DAYS[0], platform=world.platform, spark=spark)
    out = lakescore(
        world,
        "sql",
        "select count(*) as n from scores_churn where ds = DATE '2026-11-18'",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": ROWS_PER_DAY}]

    out = lakescore(world, "history", "--job", "churn", "--json")
    assert out.returncode == 0, out.stderr
    newest = json.loads(out.stdout)[0]
    assert newest["run_id"] == result.run_id
    assert newest["version"] == result.output_version
    assert newest["model"] == f"{world.model_name} v{result.model_version}"

    out = lakescore(world, "sql", "select * from no_such_table")
    assert out.returncode == 2
    assert "SQL error" in out.stderr

    out = lakescore(world, "jobs", "--json")
    listed = {row["job"]: row["status"] for row in json.loads(out.stdout)}
    assert listed["churn"] == "ok"
