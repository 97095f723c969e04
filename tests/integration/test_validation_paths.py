"""How validation meets the partition's rows: the default job validates the cached
partition and scores through the file reader, one Great Expectations context serves every partition
of a process with per-partition results, and a score run that reuses the validate task's
outcome imports no Great Expectations at all. Real Spark, registry and Delta tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from lakescore.lakehouse.lineage import AirflowIds
from lakescore.run import score_partition
from tests.conftest import DAYS, REPO, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration


def _persisted_rdds(spark) -> int:
    """RDDs persisted in the session, but Delta's own caches of its log's state."""
    rdds = spark.sparkContext._jsc.getPersistentRDDs().values()
    return sum(not str(rdd.name()).startswith("Delta Table State") for rdd in rdds)


def _null_keys_on(day):
    def transform(t: pa.Table) -> pa.Table:
        keys = t["customer_id"].to_pylist()
        days = t["ds"].to_pylist()
        seen = 0
        for i, d in enumerate(days):
            if d == day:
                keys[i] = None if seen < 7 else keys[i]
                seen += 1
        i = t.schema.get_field_index("customer_id")
        return t.set_column(i, "customer_id", pa.array(keys, t.schema.field("customer_id").type))

    return transform


def test_one_context_validates_a_range_with_each_partitions_own_result(world: World, spark):
    """A range in one session: the partitions share the process's Great Expectations
    context, yet each lineage row, result JSON and Data Docs site holds its own partition's
    outcome (the middle day's null keys fail it alone). Policy fail validates the cached
    partition, scores through the file reader and releases the cache, failed day included."""
    from lakescore.quality import validation
    from lakescore.run.range import score_range

    name = "v_range_ctx"
    world.variant_job(name, _null_keys_on(DAYS[1]))
    job = world.job(name)
    session = validation.great_expectations_session(spark)
    persisted = _persisted_rdds(spark)
    outcomes = score_range(job, DAYS, platform=world.platform, spark=spark)

    assert [o.status for o in outcomes] == ["succeeded", "failed", "succeeded"]
    assert validation.great_expectations_session(spark) is session  # built once
    assert _persisted_rdds(spark) == persisted  # every partition released its cache
    rows = {r["ds"]: r for r in lineage_rows(world, job=name)}
    for day, failed in zip(DAYS, (0, 1, 0), strict=True):
        row = rows[day]
        assert row["validation_failed"] == failed, day
        details = json.loads(row["details"])
        names = [f["expectation"] for f in details["validation"]["failures"]]
        assert names == (["expect_column_values_to_not_be_null(customer_id)"] if failed else [])
        result = json.loads(Path(details["validation"]["result_json"]).read_text())
        assert result["success"] is (not failed)
        assert result["meta"]["run_id"]["run_name"] == row["run_id"]
        docs = Path(row["validation_report"])
        assert docs.name == "index.html"
        # the site lists this run's validation only: no other partition's run leaks in
        pages = list((docs.parent / "validations").rglob("*.html"))
        assert len(pages) == 1 and row["run_id"] in str(pages[0])
        assert set(details["validation"]["seconds"]) >= {"context", "suite", "run", "docs"}
        if not failed:
            assert details["score_reader"] == "files"
    (failure,) = [o for o in outcomes if o.status == "failed"]
    assert "expect_column_values_to_not_be_null(customer_id) (7 unexpected)" in str(failure.error)
    assert rows[DAYS[2]]["output_rows"] == ROWS_PER_DAY


def test_quarantine_caches_the_partition_and_scores_spark_rows(world: World, spark):
    """Quarantine scores the rows that pass the rules' Spark predicates: Spark's reader over
    the partition validation cached (and released after the run)."""
    name = "v_quarantine_path"
    world.variant_job(
        name,
        lambda t: t,
        "validation: {policy: quarantine, expectations: [{column: tenure_months, min: 0}]}\n",
    )
    persisted = _persisted_rdds(spark)
    result = score_partition(world.job(name), DAYS[0], platform=world.platform, spark=spark)
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["validation_status"] == "passed"
    assert json.loads(row["details"])["score_reader"] == "spark"
    assert _persisted_rdds(spark) == persisted  # released after the run


CHILD = """
import json, sys
from lakescore.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "great_expectations")
print(json.dumps({"exit": code, "great_expectations_modules": loaded}))
"""


def test_a_score_run_reusing_the_validate_attempt_imports_no_great_expectations(
    world: World, spark
):
    """Airflow's validate task, then its score task as its own process with ``--validated
    --input-version``: the score process takes the outcome from lineage, so it neither
    imports Great Expectations nor builds a suite, and scores through the file reader."""
    name = "v_reuse"
    world.variant_job(name, lambda t: t)
    job = world.job(name)
    airflow = AirflowIds(dag_id=f"score_{name}", run_id="manual__reuse", task_id="validate")
    validated = score_partition(
        job, DAYS[1], platform=world.platform, spark=spark, validate_only=True, airflow=airflow
    )
    env = {
        **os.environ,
        "LAKESCORE_CONF": str(world.conf_dir),
        "AIRFLOW_CTX_DAG_ID": airflow.dag_id,
        "AIRFLOW_CTX_DAG_RUN_ID": airflow.run_id,
        "AIRFLOW_CTX_TASK_ID": "score_and_publish",
    }
    args = ["score", "--job", name, "--ds", DAYS[1].isoformat(), "--json"]
    args += ["--validated", "--input-version", str(validated.input_version)]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    *_, result_line, child_line = proc.stdout.strip().splitlines()
    child = json.loads(child_line)
    assert child["exit"] == 0, proc.stderr[-3000:]
    assert child["great_expectations_modules"] == []
    (row,) = lineage_rows(world, run_id=json.loads(result_line)["run_id"])
    details = json.loads(row["details"])
    assert details["validated_by"] == validated.run_id
    assert details["validation"]["spark_jobs"] == 0 and details["validation"]["seconds"] == {}
    assert details["score_reader"] == "files"
    assert row["validation_status"] == "passed" and row["output_rows"] == ROWS_PER_DAY
