"""Backfills and small partitions: what a partition costs through Airflow and the CLI, side
by side in one run, with validation on (the default job).

    .venv/bin/python bench/backfill.py [--days 30] [--rows 200000] [--chunk-days 15]

Builds a throwaway world (registry, champion, ``--days`` daily partitions of ``--rows`` rows,
plus a 1,000-row day), then times, each as its own process(es):

* ``cli_range``: ``lakescore score --from D1 --to DN`` (one Spark application);
* ``airflow_backfill_dag``: ``airflow dags test backfill_churn`` over the same days (chunks
  of ``--chunk-days`` days, each one spark-submit of a range run);
* ``cli_per_day`` / ``airflow_scheduled_day``: one day through ``lakescore score --ds`` and
  through ``airflow dags test score_churn`` (validate task + score task, two spark-submits),
  the per-partition cost of the old way, times ``--days`` for the estimate;
* ``small_partition``: the 1,000-row day end to end, validation on and off, and the validate
  stage of a 1,000-row day inside a warm range run.

Prints one JSON object with every wall time and the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from bench_world import bench_world

START = date(2026, 10, 1)


def _run(cmd: list[str], env: dict[str, str], timeout: float = 7200) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return wall


def _write_validation_off_job(job_file: Path) -> None:
    """``churn_noval``: the shipped churn job with validation off and its own output table."""
    import yaml

    spec = yaml.safe_load(job_file.read_text())
    spec["name"] = "churn_noval"
    spec["validation"] = {"enabled": False}
    spec["output"]["table"] = "scores/churn_noval"
    (job_file.parent / "churn_noval.yaml").write_text(yaml.safe_dump(spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-days", type=int, default=15)
    args = parser.parse_args()

    from lakescore.lakehouse.lineage import find_lineage
    from lakescore.local.airflow_local import airflow_bin, airflow_env, prepare
    from lakescore.local.demo import write_feature_partitions

    with bench_world("lakescore-bench-backfill-") as world:
        days = [START + timedelta(days=i) for i in range(args.days)]
        small_day = days[-1] + timedelta(days=1)
        write_feature_partitions(world.job, days, args.rows, row_group_rows=250_000)
        write_feature_partitions(world.job, [small_day, small_day + timedelta(days=1)], 1_000)
        lakescore = str(Path(sys.executable).parent / "lakescore")
        env = airflow_env(
            world.root / "airflow", conf_dir=world.conf, extra={"LAKESCORE_DEADLINES": "off"}
        )
        prepare(env)
        first, last = days[0].isoformat(), days[-1].isoformat()
        result: dict = {"days": args.days, "rows_per_day": args.rows, "chunk_days": args.chunk_days}

        result["cli_range_s"] = _run(
            [lakescore, "score", "--job", "churn", "--from", first, "--to", last], env
        )
        conf = {"from": first, "to": last, "chunk_days": args.chunk_days}
        result["airflow_backfill_dag_s"] = _run(
            [airflow_bin(), "dags", "test", "backfill_churn", "-c", json.dumps(conf)], env
        )
        result["cli_per_day_s"] = _run([lakescore, "score", "--job", "churn", "--ds", first], env)
        result["airflow_scheduled_day_s"] = _run(
            [airflow_bin(), "dags", "test", "score_churn", "-c", json.dumps({"ds": first}), first],
            env,
        )
        small = small_day.isoformat()
        result["small_validation_on_s"] = _run(
            [lakescore, "score", "--job", "churn", "--ds", small], env
        )
        _write_validation_off_job(world.job_file)
        result["small_validation_off_s"] = _run(
            [lakescore, "score", "--job", "churn_noval", "--ds", small], env
        )
        two = (small_day + timedelta(days=1)).isoformat()
        _run([lakescore, "score", "--job", "churn", "--from", small, "--to", two], env)
        warm = [
            r
            for r in find_lineage(world.platform.lineage_table, job="churn")
            if r["ds"] == small_day + timedelta(days=1) and r["status"] == "succeeded"
        ][-1]
        result["small_warm_validate_stage_s"] = dict(warm["stage_seconds"])["validate"]

        n = args.days
        result["ratio_airflow_backfill_over_cli_range"] = (
            result["airflow_backfill_dag_s"] / result["cli_range_s"]
        )
        result["estimate_airflow_per_day_runs_s"] = result["airflow_scheduled_day_s"] * n
        result["ratio_old_airflow_per_day_over_cli_range"] = (
            result["estimate_airflow_per_day_runs_s"] / result["cli_range_s"]
        )
        result["ratio_small_validation_on_over_off"] = (
            result["small_validation_on_s"] / result["small_validation_off_s"]
        )
        print(
            json.dumps(
                {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, indent=1
            )
        )


if __name__ == "__main__":
    main()
