"""What shadow scoring costs: the same partition scored with 0, 1 and 2 challengers in the same
pass, through ``lakescore.run.score_partition``.

    .venv/bin/python bench/shadow_cost.py [--rows 1000000] [--repeat 2]

Builds a throwaway world under a temp dir (registry with three HistGradientBoosting versions,
a one-day feature table), warms the session up, then runs each configuration ``--repeat``
times (validation off, to isolate scoring) and prints one JSON object: per configuration the
minimum wall seconds of the run, of its ``score`` stage (the one pass that reads the
partition and writes every model's files), of the ``shadow`` stage (comparison publish), and
the rows Spark's scan metrics say were read from the feature table (``details.source_scan``):
0 when the scoring tasks read the files themselves (validation off, local table).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

from bench_world import bench_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from lakescore.config import load_job
    from lakescore.lakehouse.lineage import find_lineage
    from lakescore.local.demo import train_and_register, write_feature_partitions
    from lakescore.run import score_partition
    from lakescore.spark import get_spark_session

    with bench_world("lakescore-bench-shadow-") as world:
        platform, job, conf = world.platform, world.job, world.conf
        base = world.job_file.read_text()
        challengers = {
            "none": "[]",
            "one": "[{alias: challenger}]",
            "two": "[{alias: challenger}, {alias: second}]",
        }
        for alias, seed in (("challenger", 17), ("second", 29)):
            train_and_register(
                platform, job.model.name, alias=alias, seed=seed, force_new_version=True
            )
        day = date(2026, 11, 20)
        write_feature_partitions(job, [day], args.rows, row_group_rows=250_000)
        spark = get_spark_session(platform, app_name="lakescore-bench-shadow")

        def run(name: str) -> dict[str, float]:
            text = _with_challengers(base, challengers[name])
            (conf / "jobs" / "churn.yaml").write_text(text)
            configured = load_job("churn", platform=platform)
            start = time.perf_counter()
            result = score_partition(configured, day, platform=platform, spark=spark)
            wall = time.perf_counter() - start
            (row,) = find_lineage(platform.lineage_table, run_id=result.run_id)
            stages = dict(row["stage_seconds"])
            details = json.loads(row["details"])
            return {
                "wall": wall,
                "score": stages["score"],
                "shadow": stages.get("shadow", 0.0),
                "rows_read": details.get("source_scan", {}).get("rows"),
            }

        run("two")  # warm-up: Python workers, imports, every model loaded once
        out: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for name in challengers:
                m = run(name)
                best = out.setdefault(name, m)
                for key in ("wall", "score", "shadow"):
                    best[key] = round(min(best[key], m[key]), 2)
        print(json.dumps({"rows": args.rows, "repeat": args.repeat, "runs": out}, indent=1))
        spark.stop()


def _with_challengers(job_yaml: str, challengers: str) -> str:
    """The demo job with validation off and the given challengers."""
    lines = []
    for line in job_yaml.splitlines():
        lines.append(line)
        if line.startswith("  alias:"):
            lines.append(f"  challengers: {challengers}")
    text = "\n".join(lines) + "\n"
    if text.count("\nvalidation:\n") != 1 or "\nmonitoring:" in text:
        raise SystemExit("the demo job's layout changed: adjust the bench")
    text = text.replace("\nvalidation:\n", "\nvalidation:\n  enabled: false\n")
    return text + "monitoring: {psi_fail: null}\n"


if __name__ == "__main__":
    main()
