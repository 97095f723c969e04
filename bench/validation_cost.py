"""What validation costs: Spark jobs and seconds of the Great Expectations suite on one
partition, next to the scoring pass that reuses the cached DataFrame.

    .venv/bin/python bench/validation_cost.py [--rows 2000000]

Builds a throwaway world under a temp dir (registry, model, a feature table with the measured
day and the day before, so the row-count band applies), then runs the default suite of the
demo job through ``lakescore.run.score_partition`` twice: validation only, and validation +
scoring + publish. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

from bench_world import bench_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()

    from lakescore.lakehouse.lineage import find_lineage
    from lakescore.local.demo import write_feature_partitions
    from lakescore.run import score_partition
    from lakescore.spark import get_spark_session

    with bench_world("lakescore-bench-") as world:
        platform, job = world.platform, world.job
        days = [date(2026, 11, 19), date(2026, 11, 20)]
        write_feature_partitions(job, days, args.rows, row_group_rows=250_000)
        spark = get_spark_session(platform, app_name="lakescore-bench-validation")
        score_partition(job, days[0], platform=platform, spark=spark)  # warm-up (workers, imports)

        start = time.perf_counter()
        validated = score_partition(
            job, days[1], platform=platform, spark=spark, validate_only=True
        )
        validate_wall = time.perf_counter() - start
        start = time.perf_counter()
        scored = score_partition(job, days[1], platform=platform, spark=spark)
        score_wall = time.perf_counter() - start

        def row_of(run_id: str) -> dict:
            (row,) = find_lineage(platform.lineage_table, run_id=run_id)
            return row

        v, s = row_of(validated.run_id), row_of(scored.run_id)
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "expectations": v["validation_evaluated"],
                    "validation_spark_jobs": json.loads(v["details"])["validation"]["spark_jobs"],
                    "validation_seconds": round(dict(v["stage_seconds"])["validate"], 2),
                    "validate_only_wall_seconds": round(validate_wall, 2),
                    "score_run_stage_seconds": {
                        k: round(x, 2) for k, x in dict(s["stage_seconds"]).items()
                    },
                    "score_run_wall_seconds": round(score_wall, 2),
                    "score_run_validation_spark_jobs": json.loads(s["details"])["validation"][
                        "spark_jobs"
                    ],
                },
                indent=1,
            )
        )
        spark.stop()


if __name__ == "__main__":
    main()
