"""What validation costs, side by side in one run: a cold process and a warm session, with
validation on and off, and where Great Expectations' time goes.

    .venv/bin/python bench/validation_cost.py [--rows 1000 200000] [--days 4] [--cold-repeats 2]

Builds a throwaway world under a temp dir (registry, the demo model, one feature table per
size with ``--days`` daily partitions, so the row-count band applies), then for each size:

* cold: ``lakescore score --job J --ds D`` as its own process, the demo job (validation on,
  policy ``fail``) and the same job with validation off, alternating; wall time and the
  lineage row's stages;
* warm: ``score_range`` over the days in one Spark session (the first partition of the
  process pays Great Expectations' import and context), validation on and off, and the
  validation-on range once more through the former path (the partition cached for
  validation, scored through Spark's reader);
* the validation phases of each run (lineage ``details.validation.seconds``: import,
  context, suite, run, docs, result_json) and its Spark jobs;
* ``import great_expectations`` in a fresh interpreter (``-X importtime``): total and the
  packages it spends it in.

Prints a table per section and one JSON object at the end. Never timed in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from bench_world import bench_world

BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 200_000])
    parser.add_argument("--days", type=int, default=4, help="partitions per warm range")
    parser.add_argument("--cold-repeats", type=int, default=2)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()

    from lakescore.config import load_job
    from lakescore.local.demo import write_feature_partitions

    out: dict[str, Any] = {"rows": args.rows, "import": import_cost()}
    print_import(out["import"])
    with bench_world("lakescore-bench-validation-") as world:
        days = [date(2026, 11, 10) + timedelta(days=i) for i in range(args.days + 1)]
        for n in args.rows:
            write_jobs(world.conf, n)
            write_feature_partitions(
                load_job(f"v{n}", platform=world.platform),
                days,
                n,
                row_group_rows=min(n, 250_000),
            )
        if not args.skip_cold:
            out["cold"] = {n: cold(world, n, days[1], args.cold_repeats) for n in args.rows}
            print_cold(out["cold"])
        out["warm"] = warm(world, args.rows, days[1:])
        print_warm(out["warm"])
    print(json.dumps(out, indent=1, default=str))


def write_jobs(conf: Path, rows: int) -> None:
    """``v<rows>``: the demo job (validation on, policy fail) over its own feature table;
    ``v<rows>_off``: validation off; ``v<rows>_old``: validation on, for the former path."""
    base = (conf / "jobs" / "churn.yaml").read_text()
    for suffix, extra in (
        ("", ""),
        ("_off", "validation: {enabled: false}\n"),
        ("_old", ""),
    ):
        name = f"v{rows}{suffix}"
        body = (
            base.replace("name: churn\n", f"name: {name}\n")
            .replace("table: features/churn", f"table: features/v{rows}")
            .replace("table: scores/churn", f"table: scores/{name}")
        )
        if extra:
            body = re.sub(r"(?m)^validation:\n(?:  .*\n)*", "", body) + extra
        (conf / "jobs" / f"{name}.yaml").write_text(body)


def lineage_row(world: Any, run_id: str) -> dict[str, Any]:
    from lakescore.lakehouse.lineage import find_lineage

    (row,) = find_lineage(world.platform.lineage_table, run_id=run_id)
    return row


def summary(row: dict[str, Any]) -> dict[str, Any]:
    details = json.loads(row["details"] or "{}")
    validation = details.get("validation", {})
    return {
        "stage_seconds": {k: round(v, 3) for k, v in dict(row["stage_seconds"]).items()},
        "validation_seconds": validation.get("seconds", {}),
        "validation_spark_jobs": validation.get("spark_jobs"),
        "score_reader": details.get("score_reader"),
        "expectations": row["validation_evaluated"],
    }


def cold(world: Any, rows: int, day: date, repeats: int) -> dict[str, Any]:
    """``lakescore score`` as a process, validation on and off, alternating."""
    env = {**os.environ, "LAKESCORE_CONF": str(world.conf)}
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for _ in range(repeats):
        for mode, job in (("on", f"v{rows}"), ("off", f"v{rows}_off")):
            cmd = [str(BIN / "lakescore"), "score", "--job", job, "--ds", str(day), "--json"]
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[mode].append(
                {"wall": round(wall, 2), **summary(lineage_row(world, result["run_id"]))}
            )
    on = min(r["wall"] for r in runs["on"])
    off = min(r["wall"] for r in runs["off"])
    return {
        "on": runs["on"],
        "off": runs["off"],
        "wall_on": on,
        "wall_off": off,
        "ratio": round(on / off, 2),
    }


@contextmanager
def former_path() -> Any:
    """The path before issue 21: validation caches the partition and the scoring pass reads
    the cached rows through Spark (the file reader ruled out)."""
    from lakescore.run import score_path

    files_readable = score_path.files_readable
    score_path.files_readable = lambda facts: False
    try:
        yield
    finally:
        score_path.files_readable = files_readable


def warm(world: Any, sizes: list[int], days: list[date]) -> dict[str, Any]:
    """Ranges in one Spark session: per size, validation on, off, and on through the former
    path. The process's first validated partition pays Great Expectations' import."""
    from lakescore.config import load_job
    from lakescore.run import score_partition
    from lakescore.run.range import score_range
    from lakescore.spark import get_spark_session

    platform = world.platform
    spark = get_spark_session(platform, app_name="lakescore-bench-validation")
    # warm-up: Python workers, the model, the imports of scoring (not Great Expectations)
    first = load_job(f"v{sizes[0]}_off", platform=platform)
    score_partition(first, days[0], platform=platform, spark=spark)
    out: dict[str, Any] = {}
    for n in sizes:
        for mode, suffix in (("on", ""), ("off", "_off"), ("former", "_old")):
            job = load_job(f"v{n}{suffix}", platform=platform)
            start = time.perf_counter()
            if mode == "former":
                with former_path():
                    outcomes = score_range(job, days, platform=platform, spark=spark)
            else:
                outcomes = score_range(job, days, platform=platform, spark=spark)
            wall = time.perf_counter() - start
            failed = [o for o in outcomes if o.status != "succeeded"]
            if failed:
                raise SystemExit(f"{job.name}: {failed[0].error}")
            out[f"{n}_{mode}"] = {
                "wall": round(wall, 2),
                "partitions": [
                    {"seconds": round(o.seconds, 2), **summary(lineage_row(world, o.result.run_id))}
                    for o in outcomes
                    if o.result is not None
                ],
            }
    spark.stop()
    return out


def import_cost() -> dict[str, Any]:
    """``import great_expectations`` in a fresh interpreter: wall seconds, and the heaviest
    top-level packages it imports (cumulative seconds, from ``-X importtime``)."""
    code = "import time; t = time.perf_counter(); import great_expectations; print(time.perf_counter() - t)"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    packages: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(4).split(".")[0] == m.group(4) and len(m.group(3)) <= 3:
            packages[m.group(4)] = packages.get(m.group(4), 0) + int(m.group(2)) / 1e6
    top = sorted(packages.items(), key=lambda kv: -kv[1])[:10]
    return {
        "seconds": round(float(proc.stdout.strip()), 2),
        "top_packages": {k: round(v, 2) for k, v in top},
    }


def print_import(cost: dict[str, Any]) -> None:
    print(f"\nimport great_expectations (fresh interpreter, -X importtime): {cost['seconds']} s")
    print("  heaviest top-level packages (cumulative s):", cost["top_packages"])


def print_cold(cold_runs: dict[int, dict[str, Any]]) -> None:
    print("\n## cold process: lakescore score --job J --ds D (min wall of the repeats)")
    print(
        "| rows | validation on s | off s | on/off | validate stage s | GE phases s | Spark jobs |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|")
    for n, c in cold_runs.items():
        best = min(c["on"], key=lambda r: r["wall"])
        print(
            f"| {n:,} | {c['wall_on']} | {c['wall_off']} | {c['ratio']} | "
            f"{best['stage_seconds'].get('validate')} | {best['validation_seconds']} | "
            f"{best['validation_spark_jobs']} |"
        )


def print_warm(warm_runs: dict[str, Any]) -> None:
    print("\n## warm session: score_range over the days (first partition: GE import + context)")
    print(
        "| case | wall s | validate s first / later (median) | score s (median) | reader | GE phases of a later partition | Spark jobs |"
    )
    print("|---|---:|---:|---:|---|---|---:|")
    for case, w in warm_runs.items():
        parts = w["partitions"]
        later = parts[1:] or parts
        validate = [p["stage_seconds"].get("validate", 0.0) for p in later]
        score = [p["stage_seconds"].get("score", 0.0) for p in later]
        print(
            f"| {case} | {w['wall']} | {parts[0]['stage_seconds'].get('validate', 0.0)} / "
            f"{round(median(validate), 3)} | {round(median(score), 3)} | {later[-1]['score_reader']} | "
            f"{later[-1]['validation_seconds']} | {later[-1]['validation_spark_jobs']} |"
        )


if __name__ == "__main__":
    main()
