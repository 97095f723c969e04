"""Backfills and small partitions (issue 21): what a partition costs through Airflow and
through the CLI, side by side in one run, with validation on (the default job).

    make bench-backfill                                          # 30 days x 200,000 rows
    .venv/bin/python bench/backfill.py --days 3 --rows 20000     # the same cases, small

Builds a throwaway world (a registry with the demo champion, ``--days`` daily partitions of
``--rows`` rows, and three 1,000-row days in a second feature table), then, each case as its own process(es):

1. ``cli_range``: ``lakescore score --job churn_cli --from D1 --to DN``, one warm CLI session
   with the shipped job's validation (``policy: fail``), into a fresh table of its own
   (``scores/churn_cli``: both paths publish every partition for the first time);
2. ``small_*``: a 1,000-row day end to end as cold CLI processes, validation on
   (``churn_small``) and off (``churn_small_noval``), alternating; and the ``validate`` stage
   of the 1,000-row days scored warm (the 2nd and 3rd days of one range run over the small
   days). The small days are a feature table of their own, as an hourly micro-batch job's
   would be (the default row-count band refuses a 1,000-row day after 200,000-row days);
3. ``airflow_backfill``: a real deployment (:mod:`lakescore.local.deployment`: PostgreSQL,
   api-server, scheduler, dag-processor, triggerer, LocalExecutor, and the warm driver
   ``lakescore driver`` the validate/score tasks call; started after 1-2 so its idle
   components do not slow the CLI cases), then
   ``airflow backfill create --dag-id score_churn --from-date D1 --to-date DN
   --max-active-runs 4``, timed from the command to the ``end_date`` of the last DAG run.
   Every run must succeed and every partition be published exactly once (checked with
   delta-rs: one commit per day, ``--rows`` rows and as many distinct keys per day).
   ``--no-driver``: no driver, every task spark-submits (the fallback); measured on the first
   ``--fallback-days`` days (default 3) and extrapolated to ``--days`` in proportion, and the
   table says so;
4. the stage breakdown per Airflow task: the median ``stage_seconds`` of the validate task
   and of the score task over the backfill's runs (lineage table);
5. ``backfill_dag`` (context; ``--no-backfill-dag`` skips it): ``backfill_churn`` over the
   same days in chunks of ``--chunk-days`` days, which replaces the partitions of 3.

Why ``--max-active-runs 4``: with the warm driver a DAG run's work is small (its validate
and score tasks took 1.3 s and 0.9 s, median, at 200,000 rows), and a run's wall time is
mostly Airflow's own latency between and around its six tasks (about 13 s per run). More
active runs overlap that latency; the driver still runs one request at a time and the Spark
pool still holds two Spark tasks. Measured side by side on 30 x 200,000 rows (2026-12-07):
2 active runs 196 s (3.23x the CLI range), 4 active runs 169 s (2.62x). ``--max-active-runs
N`` measures another value.

Prints a markdown table like the issue's and writes ``bench/backfill_results.md`` and
``bench/backfill_results.json`` (``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from bench_world import FOREIGN_ENV, BenchWorld, bench_world

REPO = Path(__file__).resolve().parents[1]
START = date(2026, 10, 1)
SMALL_ROWS = 1_000
AIRFLOW_JOB = "churn"  # score_churn / backfill_churn: what Airflow runs
CLI_JOB = "churn_cli"  # the same job into its own table: the CLI's cases
SMALL_JOB = "churn_small"  # 1,000-row days of their own feature table, validation on
SMALL_NOVAL_JOB = "churn_small_noval"  # the same, validation off
GOALS = {"airflow_over_cli": 3.0, "small_on_off": 2.0, "small_warm_validate_s": 2.0}


# --------------------------------------------------------------------------- the world


def write_jobs(world: BenchWorld) -> None:
    """The bench jobs, from the shipped churn job: ``churn`` for Airflow (``@daily``, so the
    run of logical date D scores D and ``--to-date DN`` includes DN; a start date in the
    future, so unpausing the DAG creates no scheduled run next to the backfill; no retries,
    so a failure fails the bench instead of retrying after 5 minutes), ``churn_cli`` (the
    same into ``scores/churn_cli``), and the small-partition jobs over a feature table of
    1,000-row days of their own (``features/churn_small``: the default row-count band
    compares a day with the previous one, and a 1,000-row day after 200,000-row days is
    rightly refused): ``churn_small`` (validation on) and ``churn_small_noval`` (off)."""
    spec = yaml.safe_load(world.job_file.read_text())
    spec["schedule"].update({"cron": "@daily", "start_date": "2100-01-01", "catchup": False})
    spec.setdefault("airflow", {})["retries"] = 0

    def variant(name: str, output: str, features: str | None = None, **more: Any) -> dict:
        job = {**spec, "name": name, "output": {**spec["output"], "table": output}, **more}
        if features:
            job["features"] = {**spec["features"], "table": features}
        return job

    jobs = {
        AIRFLOW_JOB: spec,
        CLI_JOB: variant(CLI_JOB, "scores/churn_cli"),
        SMALL_JOB: variant(SMALL_JOB, "scores/churn_small", "features/churn_small"),
        SMALL_NOVAL_JOB: variant(
            SMALL_NOVAL_JOB,
            "scores/churn_small_noval",
            "features/churn_small",
            validation={"enabled": False},
        ),
    }
    for name, job in jobs.items():
        (world.conf / "jobs" / f"{name}.yaml").write_text(yaml.safe_dump(job, sort_keys=False))


def load(world: BenchWorld, job: str) -> Any:
    from lakescore.config import load_job

    return load_job(job, platform=world.platform)


def output_table(world: BenchWorld, job: str) -> str:
    return load(world, job).output.table


# --------------------------------------------------------------------------- the CLI cases


def run_cli(world: BenchWorld, env: dict[str, str], *args: str) -> tuple[Any, float]:
    """``lakescore <args> --json`` as its own process: (its JSON, wall seconds)."""
    cmd = [str(Path(sys.executable).parent / "lakescore"), "--conf", str(world.conf), *args]
    start = time.perf_counter()
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def cli_range(world: BenchWorld, env: dict[str, str], days: list[date]) -> dict[str, Any]:
    print(f"cli_range: {len(days)} days in one session", file=sys.stderr, flush=True)
    outcomes, wall = run_cli(
        world, env, "score", "--job", CLI_JOB, "--from", str(days[0]), "--to", str(days[-1])
    )
    failed = [o for o in outcomes if o["status"] != "succeeded"]
    if failed:
        sys.exit(f"cli_range: days failed: {failed}")
    check_published(output_table(world, CLI_JOB), days, world_rows(world, days))
    seconds = [o["seconds"] for o in outcomes]
    return {
        "wall_s": wall,
        "first_day_s": seconds[0],
        "later_days_median_s": statistics.median(seconds[1:]) if len(seconds) > 1 else None,
        "first_day_stages": outcomes[0]["stage_seconds"],
        "later_days_stages_median": median_stages([o["stage_seconds"] for o in outcomes[1:]]),
    }


def small_partition(
    world: BenchWorld, env: dict[str, str], small: list[date], repeats: int
) -> dict[str, Any]:
    """Cold processes on the first small day, on/off alternating; then one warm range over
    the small days, whose later days' ``validate`` stage is the warm figure."""
    on, off = [], []
    for _ in range(repeats):
        for job, times in ((SMALL_JOB, on), (SMALL_NOVAL_JOB, off)):
            print(f"small partition: {job} {small[0]} (cold)", file=sys.stderr, flush=True)
            times.append(run_cli(world, env, "score", "--job", job, "--ds", str(small[0]))[1])
    print("small partition: warm range", file=sys.stderr, flush=True)
    outcomes, _ = run_cli(
        world, env, "score", "--job", SMALL_JOB, "--from", str(small[0]), "--to", str(small[-1])
    )
    warm = [o["stage_seconds"]["validate"] for o in outcomes[1:]]
    return {
        "validation_on_s": on,
        "validation_off_s": off,
        "on_over_off": min(on) / min(off),
        "warm_validate_stage_s": warm,
        "warm_validate_stage_median_s": statistics.median(warm),
    }


# --------------------------------------------------------------------------- checks


def world_rows(world: BenchWorld, days: list[date]) -> dict[date, int]:
    """Rows per day of the feature table, from its Delta log."""
    from lakescore.lakehouse import tables

    job = world.job
    return {
        d: tables.partition_info(job.features.table, job.features.partition_column, d).rows
        for d in days
    }


def check_published(
    uri: str, days: list[date], rows: dict[date, int], after_version: int = -1
) -> None:
    """With delta-rs: after ``after_version``, exactly one lakescore commit per day, and each
    day holds its feature rows, every key once. Exits naming the day otherwise."""
    from lakescore.lakehouse import tables

    commits = Counter(
        (entry.get("lakescore") or {}).get("ds")
        for entry in tables.history(uri)
        if entry.get("version", -1) > after_version
    )
    scores = tables.read_table(
        uri, partition_column="ds", start=days[0], end=days[-1], columns=["customer_id", "ds"]
    )
    by_day: dict[date, list[int]] = {}
    for key, day in zip(scores["customer_id"].to_pylist(), scores["ds"].to_pylist(), strict=True):
        by_day.setdefault(day, []).append(key)
    for day in days:
        keys = by_day.get(day, [])
        if commits[day.isoformat()] != 1:
            sys.exit(f"{uri} {day}: {commits[day.isoformat()]} publishes, expected exactly 1")
        if len(keys) != rows[day] or len(set(keys)) != rows[day]:
            sys.exit(f"{uri} {day}: {len(keys)} rows ({len(set(keys))} keys), not {rows[day]}")


def median_stages(stage_dicts: list[dict[str, float]]) -> dict[str, float]:
    """Per stage, the median over the runs (a stage a run did not have counts as absent)."""
    keys = list(dict.fromkeys(k for s in stage_dicts for k in s))
    return {k: statistics.median(s[k] for s in stage_dicts if k in s) for k in keys}


# --------------------------------------------------------------------------- Airflow cases


def table_version(uri: str) -> int:
    from lakescore.lakehouse import tables

    version = tables.table_version(uri)
    return -1 if version is None else version


def wait_for_runs(dep: Any, dag_id: str, run_ids: set[str] | None, timeout: float) -> list[Any]:
    """Poll the metadata DB until the runs (``run_ids``, or every run of the newest
    backfill) are all finished; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        runs = dep.dag_runs(dag_id)
        if run_ids is None:
            newest = max((r.backfill_id for r in runs if r.backfill_id is not None), default=None)
            runs = [r for r in runs if newest is not None and r.backfill_id == newest]
        else:
            runs = [r for r in runs if r.run_id in run_ids]
        if runs and all(r.state in ("success", "failed") for r in runs):
            return runs
        if time.monotonic() > deadline:
            sys.exit(f"{dag_id}: runs not finished within {timeout:.0f}s:{dep.log_tails()}")
        time.sleep(1)


def require_success(dep: Any, dag_id: str, runs: list[Any]) -> None:
    bad = {r.run_id: dep.task_states(dag_id, r.run_id) for r in runs if r.state != "success"}
    if bad:
        sys.exit(f"{dag_id}: runs failed: {bad}")


def airflow_backfill(
    dep: Any, world: BenchWorld, days: list[date], max_active_runs: int, all_days: int
) -> dict[str, Any]:
    """``airflow backfill create`` through the real scheduler over ``days``, wall time from
    the command to the last run's end; every partition published exactly once. Fewer days
    than ``all_days`` (the spark-submit fallback, ``--no-driver``) are extrapolated to
    ``all_days`` in proportion, and say so."""
    uri = output_table(world, AIRFLOW_JOB)
    before = table_version(uri)
    dep.airflow("dags", "unpause", f"score_{AIRFLOW_JOB}")
    print(f"airflow_backfill: {len(days)} days", file=sys.stderr, flush=True)
    started = datetime.now(UTC)
    dep.airflow(
        "backfill",
        "create",
        "--dag-id",
        f"score_{AIRFLOW_JOB}",
        "--from-date",
        str(days[0]),
        "--to-date",
        str(days[-1]),
        "--max-active-runs",
        str(max_active_runs),
    )
    runs = wait_for_runs(dep, f"score_{AIRFLOW_JOB}", None, timeout=600 + 300 * len(days))
    require_success(dep, f"score_{AIRFLOW_JOB}", runs)
    if sorted(r.logical_date.date() for r in runs) != days:
        sys.exit(f"backfill ran {[str(r.logical_date) for r in runs]}, not {days}")
    check_published(uri, days, world_rows(world, days), after_version=before)
    measured = (max(r.end_date for r in runs) - started).total_seconds()
    return {
        "wall_s": measured * all_days / len(days),
        "measured_days": len(days),
        "measured_wall_s": measured,
        "extrapolated": len(days) != all_days,
        "max_active_runs": max_active_runs,
        "run_ids": sorted(r.run_id for r in runs),
    }


def task_breakdown(world: BenchWorld, run_ids: list[str]) -> dict[str, Any]:
    """Median ``stage_seconds`` and duration per Airflow task over the backfill's runs, from
    the lineage rows the validate and score tasks wrote."""
    from lakescore.lakehouse.lineage import find_lineage

    wanted = set(run_ids)
    rows = [
        r
        for r in find_lineage(world.platform.lineage_table, job=AIRFLOW_JOB, status="succeeded")
        if r["airflow_run_id"] in wanted
    ]
    out: dict[str, Any] = {}
    order = {"validate_partition": 0, "score_and_publish": 1}  # the DAG's order, then the rest
    found = {r["airflow_task_id"] for r in rows if r["airflow_task_id"]}
    for task in sorted(found, key=lambda t: (order.get(t, 2), t)):
        mine = [r for r in rows if r["airflow_task_id"] == task]
        out[task] = {
            "runs": len(mine),
            "duration_median_s": statistics.median(r["duration_s"] for r in mine),
            "stages_median_s": median_stages([dict(r["stage_seconds"]) for r in mine]),
        }
    return out


def backfill_dag(dep: Any, world: BenchWorld, days: list[date], chunk_days: int) -> dict:
    """``backfill_churn`` (chunks, one range run each) over the same days: replaces them."""
    dag_id = f"backfill_{AIRFLOW_JOB}"
    dep.wait_for_dag(dag_id)
    dep.airflow("dags", "unpause", dag_id)
    conf = {"from": str(days[0]), "to": str(days[-1]), "chunk_days": chunk_days}
    print(f"backfill_dag: {len(days)} days, chunks of {chunk_days}", file=sys.stderr, flush=True)
    known = {r.run_id for r in dep.dag_runs(dag_id)}
    started = datetime.now(UTC)
    dep.airflow("dags", "trigger", dag_id, "--conf", json.dumps(conf))
    new: list[Any] = []
    while not new:
        new = [r for r in dep.dag_runs(dag_id) if r.run_id not in known]
        time.sleep(0.5)
    (run,) = wait_for_runs(dep, dag_id, {new[0].run_id}, timeout=600 + 300 * len(days))
    require_success(dep, dag_id, [run])
    return {"wall_s": (run.end_date - started).total_seconds(), "chunk_days": chunk_days}


# --------------------------------------------------------------------------- report


def _f(value: float | None, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:,.1f}{unit}"


def _stages(stages: dict[str, float], top: int = 6) -> str:
    parts = sorted(stages.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v:.1f}" for k, v in parts)


def markdown(r: dict[str, Any]) -> str:
    """The issue's table for this machine, the goals, and the stage breakdown per task."""
    n, rows = r["days"], r["rows_per_day"]
    cli, small = r["cli_range"], r["small_partition"]
    lines = [
        f"# Backfill benchmark ({n} days x {rows:,} rows)",
        "",
        f"`bench/backfill.py --days {n} --rows {rows}` on {r['cores']} cores, {r['when']}, "
        f"commit {r['commit']}, load average at start / end {r['load_start']} / "
        f"{r['load_end']}. Validation on (the shipped job's `policy: fail`) unless said. "
        "The Airflow wall time starts at `airflow backfill create` on a running deployment "
        "(started, with its driver, in "
        f"{_f(r.get('deployment_start_s'))}, not counted); the CLI's includes its JVM start.",
        "",
        "| run | work | wall |",
        "|---|---|---:|",
    ]
    af = r.get("airflow_backfill")
    if af:
        per_task = "; ".join(
            f"{task} median {t['duration_median_s']:.1f} s ({_stages(t['stages_median_s'], 4)})"
            for task, t in r["tasks"].items()
        )
        how = "warm driver" if r["driver"] else "spark-submit per task (no driver)"
        wall = _f(af["wall_s"])
        if af["extrapolated"]:
            wall = (
                f"{wall} (extrapolated from {af['measured_days']} days: "
                f"{_f(af['measured_wall_s'])})"
            )
        lines.append(
            f"| Airflow backfill (`airflow backfill create`, real scheduler, {how}, "
            f"--max-active-runs {af['max_active_runs']}) | {per_task} | {wall} |"
        )
    lines.append(
        f"| CLI range, {n} days in one session | first day {_f(cli['first_day_s'])}, then "
        f"{_f(cli['later_days_median_s'])} per day (median) | {_f(cli['wall_s'])} |"
    )
    if r.get("backfill_dag"):
        bd = r["backfill_dag"]
        lines.append(
            f"| `backfill_churn` DAG (chunks of {bd['chunk_days']} days, one range run each) "
            f"| | {_f(bd['wall_s'])} |"
        )
    lines.append(
        f"| CLI, {SMALL_ROWS:,}-row partition, validation on / off (cold processes, min of "
        f"{len(small['validation_on_s'])}) | | {_f(min(small['validation_on_s']))} / "
        f"{_f(min(small['validation_off_s']))} |"
    )
    lines.append(
        f"| `validate` stage of a {SMALL_ROWS:,}-row day in a warm range run (median) | | "
        f"{_f(small['warm_validate_stage_median_s'])} |"
    )
    lines += [
        "",
        "## Goals (issue 21)",
        "",
        "| goal | measured | bar | met |",
        "|---|---:|---:|---|",
    ]
    for name, value, bar, op in r["checks"]:
        met = "n/a" if value is None else ("yes" if op(value, bar) else "**no**")
        shown = "n/a" if value is None else f"{value:.2f}"
        lines.append(f"| {name} | {shown} | {'<=' if op is _le else '<'} {bar} | {met} |")
    if r.get("tasks"):
        lines += breakdown_table(r["tasks"])
    lines += [
        "",
        "## Where the CLI range's time goes (median `stage_seconds` of days 2..N)",
        "",
        _stages(cli["later_days_stages_median"], top=20),
        "",
    ]
    return "\n".join(lines)


def breakdown_table(tasks: dict[str, Any]) -> list[str]:
    names = list(tasks)
    stages = list(dict.fromkeys(k for t in tasks.values() for k in t["stages_median_s"]))
    lines = [
        "",
        "## Stage breakdown per Airflow task (median `stage_seconds` over the backfill's runs)",
        "",
        "| stage | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for stage in stages:
        cells = [tasks[t]["stages_median_s"].get(stage) for t in names]
        shown = " | ".join("" if c is None else f"{c:.2f}" for c in cells)
        lines.append(f"| {stage} | {shown} |")
    lines.append(
        "| **task duration** | "
        + " | ".join(f"**{tasks[t]['duration_median_s']:.2f}**" for t in names)
        + " |"
    )
    score = tasks.get("score_and_publish", {}).get("stages_median_s", {})
    if "validate_partition" in tasks:
        lines += [
            "",
            "No work twice: the score task's own `validate` stage takes "
            f"{score.get('validate', 0.0):.2f} s (median) after the validate task's "
            f"{tasks['validate_partition']['stages_median_s'].get('validate', 0.0):.2f} s.",
        ]
    return lines


def _le(a: float, b: float) -> bool:
    return a <= b


def _lt(a: float, b: float) -> bool:
    return a < b


def checks(r: dict[str, Any]) -> list[tuple[str, float | None, float, Any]]:
    af = r.get("airflow_backfill")
    ratio = af["wall_s"] / r["cli_range"]["wall_s"] if af else None
    small = r["small_partition"]
    return [
        ("airflow_backfill / cli_range", ratio, GOALS["airflow_over_cli"], _le),
        ("small partition: validation on / off", small["on_over_off"], GOALS["small_on_off"], _le),
        (
            "warm validate stage, 1,000 rows (s)",
            small["warm_validate_stage_median_s"],
            GOALS["small_warm_validate_s"],
            _lt,
        ),
    ]


def write_results(r: dict[str, Any], out_dir: Path) -> str:
    r["checks"] = checks(r)
    text = markdown(r)
    data = {**r, "checks": [{"goal": c[0], "value": c[1], "bar": c[2]} for c in r["checks"]]}
    (out_dir / "backfill_results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out_dir / "backfill_results.md").write_text(text)
    return text


# --------------------------------------------------------------------------- main


def _commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="daily partitions (default 30)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per day (200,000)")
    parser.add_argument("--max-active-runs", type=int, default=4)
    parser.add_argument("--chunk-days", type=int, default=15, help="backfill DAG chunk size")
    parser.add_argument("--small-repeats", type=int, default=2, help="cold runs per small case")
    parser.add_argument("--no-backfill-dag", action="store_true", help="skip the backfill DAG")
    parser.add_argument("--no-airflow", action="store_true", help="the CLI cases only")
    parser.add_argument(
        "--no-driver",
        action="store_true",
        help="Airflow tasks spark-submit (the fallback) instead of calling a warm driver; "
        "measured on --fallback-days days and extrapolated",
    )
    parser.add_argument("--fallback-days", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench")
    return parser.parse_args()


def airflow_cases(
    world: BenchWorld, days: list[date], args: argparse.Namespace, result: dict[str, Any]
) -> None:
    """Start the deployment (and the warm driver its tasks call, unless ``--no-driver``),
    run the backfill and the backfill DAG, stop everything."""
    from lakescore.local.deployment import airflow_deployment

    driver = result["driver"] = not args.no_driver
    backfill_days = days if driver else days[: args.fallback_days]
    print(f"starting Airflow on PostgreSQL (driver: {driver})", file=sys.stderr, flush=True)
    home = world.root / "airflow"
    dags = [f"score_{AIRFLOW_JOB}"]
    started = time.perf_counter()
    with airflow_deployment(home, world.conf, dags=dags, driver=driver) as dep:
        # not in the backfill's wall time: a deployment (and its driver) is a service
        result["deployment_start_s"] = time.perf_counter() - started
        backfill = airflow_backfill(dep, world, backfill_days, args.max_active_runs, len(days))
        result["airflow_backfill"] = backfill
        result["tasks"] = task_breakdown(world, backfill["run_ids"])
        if not args.no_backfill_dag:
            result["backfill_dag"] = backfill_dag(dep, world, days, args.chunk_days)
    if dep.survivors:
        print(f"warning: left after teardown: {dep.survivors}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    for name in FOREIGN_ENV:  # every process below gets the world's conf and nothing else
        os.environ.pop(name, None)
    from lakescore.local.airflow_local import airflow_env
    from lakescore.local.demo import write_feature_partitions

    result: dict[str, Any] = {
        "days": args.days,
        "rows_per_day": args.rows,
        "cores": os.cpu_count(),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
    with bench_world("lakescore-bench-backfill-") as world:
        days = [START + timedelta(days=i) for i in range(args.days)]
        small = [days[-1] + timedelta(days=i) for i in (1, 2, 3)]
        print(f"world under {world.root}: writing partitions", file=sys.stderr, flush=True)
        write_jobs(world)
        write_feature_partitions(world.job, days, args.rows, row_group_rows=250_000)
        write_feature_partitions(load(world, SMALL_JOB), small, SMALL_ROWS)
        env = airflow_env(world.root / "cli-home", conf_dir=world.conf)
        result["cli_range"] = cli_range(world, env, days)
        result["small_partition"] = small_partition(world, env, small, args.small_repeats)
        if not args.no_airflow:
            airflow_cases(world, days, args, result)
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(write_results(result, args.out_dir))
    print(f"\nwrote {args.out_dir / 'backfill_results.md'} and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
