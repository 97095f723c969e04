"""``lakescore``: the command line. Every command has ``--help`` with examples.

Exit codes: 0 success, 2 bad input (fix the request or the data), 1 failure (the run broke;
retrying may help). Errors are one line; ``-v`` shows the traceback.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from lakescore.errors import BadInputError, LakescoreError
from lakescore.terminal import RichProgress, console, print_table

EXAMPLES = {
    "score": """examples:
  lakescore score --job churn --ds 2026-11-20
  lakescore score --job churn --ds 2026-11-20 --model-version 3     # pin a version (backfill)
  lakescore score --job churn --ds 2026-11-20 --json                # machine-readable result
  lakescore score --job churn --from 2026-11-01 --to 2026-11-30     # a range in one Spark app""",
    "validate": """examples:
  lakescore validate --job churn --ds 2026-11-20          # JSON + Data Docs under _reports/
  lakescore validate --job churn --ds 2026-11-20 --json""",
    "demo": """examples:
  lakescore demo                      # 5 days x 200,000 customers, then two analyst queries
  lakescore demo --days 2 --rows 50000""",
    "sql": """views: scores_<job>, features_<job>, shadow_<job>, lineage, metrics (DuckDB over the Delta tables, no JVM)
examples:
  lakescore sql "select ds, count(*), avg(score) from scores_churn group by ds order by ds"
  lakescore sql "select * from lineage where job = 'churn' order by started_at desc limit 5" --json""",
    "history": """examples:
  lakescore history --job churn
  lakescore history --job churn --limit 3 --json""",
    "new-job": """reads the model's signature from the registry and the table's schema, writes
conf/jobs/<name>.yaml (guesses marked REVIEW) and checks it as a run would
examples:
  lakescore new-job --model fraud@champion --features features/transactions
  lakescore new-job --model fraud/3 --features /data/tx --name fraud_daily --key tx_id""",
    "jobs": """examples:
  lakescore jobs           # every conf/jobs/*.yaml, checked""",
    "airflow": """examples:
  lakescore airflow                 # UI on http://localhost:8080, login printed when ready
  lakescore airflow --port 8090""",
    "driver": """one long-lived process with a warm Spark session (MLflow and Great Expectations
imported) that serves Airflow's validate/score tasks over HTTP; tasks fall back to
spark-submit when it is not there. Stop it with Ctrl-C / SIGTERM. `lakescore airflow` starts one.
examples:
  lakescore driver                          # conf/platform.yaml driver.host/port (127.0.0.1:8790)
  lakescore driver --port 8791 --profile standalone
  curl -s http://127.0.0.1:8790/health""",
    "maintenance": """records attempts whose process died (lineage status 'abandoned'), deletes their
staged files, and vacuums files of the prediction table that no Delta version references
(a writer killed before its commit) once they are older than --retention-hours
examples:
  lakescore maintenance --job churn
  lakescore maintenance --job churn --dry-run --json       # list what VACUUM would delete
  lakescore maintenance --job churn --retention-hours 0    # only when nothing else writes""",
    "report": """writes one self-contained HTML page (runs, score histogram vs training baseline,
PSI over time, rows per partition, validation) from the lineage and metrics tables (no JVM)
examples:
  lakescore report --job churn                        # -> <warehouse>/_reports/churn/index.html
  lakescore report --job churn --out /tmp/churn.html
  lakescore report --job churn --json                 # {"path": "..."}""",
    "rollback": """restores a partition as it was at a table version (one commit), or re-scores it with
an earlier model version; lineage records who ($LAKESCORE_USER, else the OS user) and why (--reason)
examples:
  lakescore history --job churn                                   # find the version to go back to
  lakescore rollback --job churn --ds 2026-11-20 --to-version 7 --reason 'bad rerun (INC-12)'
  lakescore rollback --job churn --ds 2026-11-20 --to-model-version 3 --reason 'v4 miscalibrated'""",
    "erase": """deletes every prediction of the listed entities from every prediction, rejects (and
shadow) table of every job whose entity keys equal the CSV header (one commit per table); the
lineage row has counts per table, never the keys. --vacuum then removes the old files that are
older than governance.erasure_retention (run `lakescore vacuum` again once it has passed)
examples:
  lakescore erase --entity-file keys.csv --reason "GDPR request 2026-118"
  lakescore erase --entity-file keys.csv --job churn --reason "..." --vacuum""",
    "vacuum": """deletes files that left a job's tables longer ago than governance.erasure_retention,
so time travel to older versions no longer returns erased rows
examples:
  lakescore vacuum --job churn""",
    "forecast": """predicts the run time of a partition from the job's past succeeded runs (lineage), with
an error band, and warns when it exceeds the job's schedule.window
examples:
  lakescore forecast --job churn --rows 1400000
  lakescore forecast --job churn --ds 2026-11-20         # the partition's rows from the Delta log
  lakescore forecast --job churn --rows 1400000 --json""",
    "promote": """prints the latest champion/challenger comparisons of the version, checks its signature
against the job's features, then moves the alias (and records a lineage row, action promote)
examples:
  lakescore promote --job churn --version 3 --reason "better recall in shadow since 11-16"
  lakescore promote --job churn --version 3 --yes          # no confirmation prompt
then rescore the days that should carry the new model, e.g.
  airflow backfill create --dag-id score_churn --from-date 2026-11-16 --to-date 2026-11-20""",
}


# makes a subcommand: (name, help) -> its parser (see _command)
CommandFactory = Callable[[str, str], argparse.ArgumentParser]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakescore",
        description="Scheduled batch model scoring on the lakehouse.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `lakescore <command> --help` for examples. Exit codes: 0 ok, 1 failure, 2 bad input.",
    )
    parser.add_argument("--conf", help="config folder (default: $LAKESCORE_CONF or ./conf)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    command = functools.partial(_command, sub)
    _run_commands(command)
    _inspect_commands(command)
    _maintenance_commands(command)
    _governance_commands(command)
    return parser


def _command(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """One subcommand with the options every command takes (``--json``, ``--conf``, ``-v``)."""
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES.get(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--conf", default=argparse.SUPPRESS, help="config folder")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks",
    )
    return p


def _run_commands(command: CommandFactory) -> None:
    """``score``, ``validate`` (a partition or a range of days) and ``demo``."""
    score = command(
        "score",
        "Score one partition of a job (or every day of a range) and publish it "
        "(write-audit-publish).",
    )
    score.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    _partition_arguments(score)
    score.add_argument(
        "--model-version", type=int, help="pin this model version (wins over the alias)"
    )
    score.add_argument("--run-id", help="reuse a run id (a retried attempt of the same run)")
    score.add_argument("--txn-version", type=int, help=argparse.SUPPRESS)
    score.add_argument(
        "--input-version", type=int, help="pin the feature table's Delta version (snapshot)"
    )
    score.add_argument(
        "--validated",
        action="store_true",
        help="this Airflow run's validate task already checked the snapshot: reuse its outcome",
    )
    score.add_argument(
        "--shadow",
        choices=["on", "off"],
        default="on",
        help="score the job's challengers in shadow (default on)",
    )

    validate = command("validate", "Validate one partition with Great Expectations (no scoring).")
    validate.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    _partition_arguments(validate)
    validate.add_argument("--model-version", type=int, help="pin this model version")
    validate.add_argument("--input-version", type=int, help="pin the feature table's version")

    demo = command("demo", "Build the demo world (model, feature table), score it, query it.")
    demo.add_argument("--days", type=int, default=5, help="days of partitions (default 5)")
    demo.add_argument("--rows", type=int, default=200_000, help="rows per day (default 200000)")
    demo.add_argument("--job", default="churn", help="demo job (default churn)")


def _inspect_commands(command: CommandFactory) -> None:
    """``sql``, ``history``, ``jobs`` and ``airflow``: look at tables, configs, DAGs."""
    sql = command("sql", "Run SQL over prediction, feature and lineage tables (DuckDB).")
    sql.add_argument("query", help="the SQL query")
    sql.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")

    history = command("history", "Versions of a job's prediction table, with run and model.")
    history.add_argument("--job", required=True)
    history.add_argument("--limit", type=int, default=20)

    command("jobs", "List the configured jobs and check their config.")

    from lakescore.ml.scaffold import add_arguments as add_new_job_arguments

    add_new_job_arguments(
        command("new-job", "Write a job YAML from a registered model and a feature table.")
    )

    airflow = command(
        "airflow", "Start a local Airflow (standalone, SQLite) with the lakescore DAGs."
    )
    airflow.add_argument("--home", help="AIRFLOW_HOME (default: <var>/airflow)")
    airflow.add_argument(
        "--port", type=int, default=8080, help="API server / UI port (default 8080)"
    )
    airflow.add_argument(
        "--driver-port", type=int, help="the warm driver's port (default: driver.port, 8790)"
    )
    airflow.add_argument(
        "--no-driver", action="store_true", help="no warm driver: every task spark-submits"
    )

    driver = command("driver", "Serve Airflow's scoring tasks from one warm Spark session.")
    driver.add_argument("--profile", help="Spark profile (default: spark.default_profile)")
    driver.add_argument("--host", help="listen address (default: driver.host, 127.0.0.1)")
    driver.add_argument("--port", type=int, help="listen port (default: driver.port, 8790)")


def _maintenance_commands(command: CommandFactory) -> None:
    """``maintenance`` and ``report``."""
    maintenance = command(
        "maintenance", "Clean up after killed runs: abandoned attempts, staging, orphan files."
    )
    maintenance.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    maintenance.add_argument(
        "--stale-after",
        default="6h",
        help="an attempt marker from another host older than this is abandoned (default 6h)",
    )
    maintenance.add_argument(
        "--retention-hours",
        type=int,
        default=168,
        help="vacuum unreferenced files older than this (default 168 = Delta's 7 days)",
    )
    maintenance.add_argument(
        "--dry-run", action="store_true", help="only list the files VACUUM would delete"
    )

    report = command("report", "Write a job's HTML report (runs, score drift, validation).")
    report.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    report.add_argument(
        "--out", help="output file (default: <reports root>/<job>/index.html in the warehouse)"
    )


def _governance_commands(command: CommandFactory) -> None:
    """``rollback``, ``erase``, ``vacuum``, ``forecast`` and ``promote``."""
    rollback = command("rollback", "Restore a partition to a table version or an earlier model.")
    rollback.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    rollback.add_argument("--ds", required=True, help="partition date, YYYY-MM-DD")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-version", type=int, help="prediction table version to restore")
    target.add_argument("--to-model-version", type=int, help="re-score with this model version")
    rollback.add_argument("--reason", required=True, help="why (recorded in lineage)")

    erase_cmd = command(
        "erase", "Delete every prediction of the listed entities (right to erasure)."
    )
    erase_cmd.add_argument(
        "--entity-file", required=True, help="CSV whose header names the job's entity key columns"
    )
    erase_cmd.add_argument("--reason", required=True, help="why (recorded in lineage)")
    erase_cmd.add_argument(
        "--job", action="append", help="only this job (repeatable; default: every matching job)"
    )
    erase_cmd.add_argument(
        "--vacuum", action="store_true", help="then VACUUM with governance.erasure_retention"
    )

    vacuum_cmd = command("vacuum", "VACUUM a job's tables with the configured erasure retention.")
    vacuum_cmd.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    vacuum_cmd.add_argument("--reason", help="why (recorded in lineage)")

    forecast = command("forecast", "Forecast a partition's run time against the batch window.")
    forecast.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    size = forecast.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=int, help="rows of the partition to forecast")
    size.add_argument("--ds", help="forecast this feature partition (rows from the Delta log)")
    forecast.add_argument(
        "--confidence", type=float, default=0.9, help="error band coverage (default 0.9)"
    )
    promote = command("promote", "Move a job's model alias to a version (champion/challenger).")
    promote.add_argument("--job", required=True, help="job name (conf/jobs/<job>.yaml)")
    promote.add_argument("--version", type=int, required=True, help="model version to promote")
    promote.add_argument("--alias", default="champion", help="alias to move (default champion)")
    promote.add_argument("--reason", help="why (kept in the lineage row)")
    promote.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _partition_arguments(p: argparse.ArgumentParser) -> None:
    """``--ds D``, or ``--from D1 --to D2`` for a range run (one Spark application)."""
    p.add_argument("--ds", help="partition date, YYYY-MM-DD")
    p.add_argument(
        "--from", dest="from_ds", metavar="D1", help="first day of a range run (with --to)"
    )
    p.add_argument("--to", dest="to_ds", metavar="D2", help="last day of a range run, included")


# --------------------------------------------------------------------------- commands


def _platform(args: argparse.Namespace) -> Any:
    from lakescore.config import load_platform

    return load_platform(args.conf)


def cmd_score(args: argparse.Namespace) -> int:
    from lakescore.config import load_job
    from lakescore.run import score_partition

    ranged = args.from_ds is not None or args.to_ds is not None
    if ranged == (args.ds is not None) or (ranged and None in (args.from_ds, args.to_ds)):
        raise BadInputError(f"lakescore {args.command}: give --ds D, or --from D1 --to D2")
    platform = _platform(args)
    job = load_job(args.job, platform=platform)
    if ranged:
        return _score_range(args, job, platform)
    progress = RichProgress(quiet=args.json)
    validate_only = args.command == "validate"
    try:
        result = score_partition(
            job,
            args.ds,
            platform=platform,
            model_version=args.model_version,
            run_id=getattr(args, "run_id", None),
            txn_version=getattr(args, "txn_version", None),
            progress=progress,
            input_version=args.input_version,
            validate_only=validate_only,
            validated=getattr(args, "validated", False),
            shadow=getattr(args, "shadow", "on") == "on",
        )
    finally:
        progress.close()
    if args.json:
        print(json.dumps(result.to_dict()))
    elif validate_only:
        print(
            f"validated {result.job} {result.ds}: {result.rows:,} rows of "
            f"{result.input_table} version {result.input_version} in {result.seconds:.1f}s"
        )
    else:
        print(
            f"scored {result.job} {result.ds}: {result.rows:,} rows with {result.model_name} "
            f"v{result.model_version} -> {result.output_table} version {result.output_version} "
            f"in {result.seconds:.1f}s ({result.rows_per_s:,.0f} rows/s)"
        )
    return 0


def _score_range(args: argparse.Namespace, job: Any, platform: Any) -> int:
    """``--from D1 --to D2``: every day in one Spark application, one line per partition
    (progress: partitions done / total, rows/s, ETA); exit 0 only if every day succeeded."""
    from lakescore.run.range import range_days, range_exit_code, score_range

    for flag in ("run_id", "txn_version", "input_version"):
        if getattr(args, flag, None) is not None:
            raise BadInputError(f"--{flag.replace('_', '-')} names one partition: not with --from")
    days = range_days(args.from_ds, args.to_ds, job=job)
    out = console()

    def report(outcome: Any, progress: Any) -> None:
        if args.json:
            return
        what = (
            f"{outcome.rows:,} rows in {outcome.seconds:.1f}s"
            if outcome.error is None
            else str(outcome.error).splitlines()[0]
        )
        colour = "red" if outcome.error is not None else "green"
        out.print(
            f"[bold cyan]{'partition':>13}[/] {outcome.ds} [{colour}]{outcome.status}[/] "
            f"{what} [dim]({progress.line()})[/]",
            soft_wrap=True,
        )

    if not args.json:
        out.print(f"[bold cyan]{'range':>13}[/] {job.name}: {len(days)} partitions")
    outcomes = score_range(
        job,
        days,
        platform=platform,
        model_version=args.model_version,
        on_partition=report,
        validate_only=args.command == "validate",
        shadow=getattr(args, "shadow", "on") == "on",
    )
    failed = [o for o in outcomes if o.error is not None]
    if args.json:
        print(json.dumps([o.to_dict() for o in outcomes]))
    else:
        rows = sum(o.rows for o in outcomes)
        print(
            f"{args.command} {job.name} {days[0]}..{days[-1]}: "
            f"{len(outcomes) - len(failed)} of {len(outcomes)} partitions, {rows:,} rows"
            + (f"; failed: {', '.join(str(o.ds) for o in failed)}" if failed else "")
        )
    return range_exit_code(outcomes)


def cmd_sql(args: argparse.Namespace) -> int:
    from lakescore.api import sql

    try:
        relation = sql(args.query, _platform(args))
    except Exception as exc:
        if isinstance(exc, LakescoreError):
            raise
        raise BadInputError(f"SQL error: {str(exc).splitlines()[0]}") from exc
    if relation is None:
        return 0
    columns = relation.columns
    rows = [dict(zip(columns, r, strict=True)) for r in relation.fetchmany(args.limit)]
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        print_table(rows)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from lakescore.config import load_job
    from lakescore.lakehouse import tables

    job = load_job(args.job, platform=_platform(args))
    if not tables.table_exists(job.output.table):
        raise BadInputError("no predictions published yet", job=job.name, file=job.output.table)
    rows = []
    for entry in tables.history(job.output.table, args.limit):
        meta = entry.get("lakescore") or {}
        rows.append(
            {
                "version": entry.get("version"),
                "timestamp": time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.gmtime(entry.get("timestamp", 0) / 1000)
                ),
                "operation": entry.get("operation"),
                "ds": meta.get("ds"),
                "rows": meta.get("rows"),
                "model": f"{meta['model_name']} v{meta['model_version']}"
                if meta.get("model_name")
                else None,
                "input_version": meta.get("input_version"),
                "run_id": meta.get("lakescore_run_id"),
            }
        )
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        print_table(rows, title=f"{job.output.table}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from lakescore.config import list_job_names, load_job

    platform = _platform(args)
    rows, broken = [], 0
    for name in list_job_names(platform.conf_dir):
        try:
            job = load_job(name, platform=platform)
            rows.append(
                {
                    "job": name,
                    "model": job.model.reference,
                    "task": _task_text(platform, job),
                    "features": job.features.table,
                    "output": job.output.table,
                    "schedule": job.schedule.cron,
                    "status": "ok",
                }
            )
        except LakescoreError as exc:
            broken += 1
            rows.append(
                {
                    "job": name,
                    "model": "",
                    "task": "",
                    "features": "",
                    "output": "",
                    "schedule": "",
                    "status": str(exc),
                }
            )
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(rows)
    return 2 if broken else 0


def _task_text(platform: Any, job: Any) -> str:
    """``binary`` as configured, or ``auto (binary)`` with what the last run decided."""
    from lakescore.ml.models import last_decided_task

    if job.model.task != "auto":
        return job.model.task
    decided = last_decided_task(platform, job.name)
    return f"auto ({decided})" if decided else "auto"


def cmd_demo(args: argparse.Namespace) -> int:
    from lakescore.local.demo import run_demo

    run_demo(_platform(args), job_name=args.job, days=args.days, rows=args.rows, as_json=args.json)
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    import contextlib
    import os
    import signal
    import subprocess

    from lakescore.local.airflow_local import (
        admin_password,
        airflow_bin,
        airflow_env,
        prepare,
        start_local_driver,
        wait_for_local_driver,
    )

    platform = _platform(args)
    home = Path(args.home or Path(platform.var_dir) / "airflow").resolve()
    env = airflow_env(
        home,
        conf_dir=platform.conf_dir,
        extra={
            "AIRFLOW__API__PORT": str(args.port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{args.port}",
        },
    )
    err = console()
    err.print(f"preparing Airflow in {home} (metadata DB, pool {platform.airflow.spark_pool})")
    prepare(env)
    driver = None if args.no_driver else start_local_driver(env, home, args.driver_port)
    process = subprocess.Popen([airflow_bin(), "standalone"], env=env, start_new_session=True)

    def stop_airflow(signum: int, _frame: object) -> None:
        # standalone runs in its own process group: stop all of it, not just this process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        if driver is not None:
            driver.stop()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop_airflow)
    signal.signal(signal.SIGHUP, stop_airflow)
    try:
        for _ in range(240):
            password = admin_password(home)
            if password or process.poll() is not None:
                break
            time.sleep(0.5)
        if password:
            err.print(
                f"[bold green]Airflow is starting[/]: http://localhost:{args.port}  "
                f"login [bold]admin[/] / [bold]{password}[/] (also in "
                f"{home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops it"
            )
        if driver is not None:
            wait_for_local_driver(driver)
        return process.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        return 0
    finally:
        if driver is not None:
            driver.stop()


def cmd_driver(args: argparse.Namespace) -> int:
    from lakescore.driver.server import serve

    err = console()
    return serve(
        args.conf,
        profile=args.profile,
        host=args.host,
        port=args.port,
        announce=lambda line: err.print(line, soft_wrap=True, markup=False),
    )


def cmd_report(args: argparse.Namespace) -> int:
    from lakescore.reporting.report import write_job_report

    path = write_job_report(_platform(args), args.job, args.out)
    if args.json:
        print(json.dumps({"path": str(path)}))
    else:
        print(path)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from lakescore.config import load_job
    from lakescore.ops.governance import rollback_to_model_version, rollback_to_version

    platform = _platform(args)
    job = load_job(args.job, platform=platform)
    if args.to_version is not None:
        result = rollback_to_version(
            job, args.ds, args.to_version, platform=platform, reason=args.reason
        )
    else:
        progress = RichProgress(quiet=args.json)
        try:
            result = rollback_to_model_version(
                job,
                args.ds,
                args.to_model_version,
                platform=platform,
                reason=args.reason,
                progress=progress,
            )
        finally:
            progress.close()
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        what = (
            f"table version {result.to}"
            if result.mode == "table_version"
            else f"model version {result.to}"
        )
        print(
            f"rolled back {result.job} {result.ds} to {what}: {result.rows:,} rows -> "
            f"{job.output.table} version {result.output_version} (run {result.run_id})"
        )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from lakescore.config import load_job
    from lakescore.ml.shadow import check_promotable, latest_comparisons, promote

    platform = _platform(args)
    job = load_job(args.job, platform=platform)
    _, current = check_promotable(platform, job, args.version, args.alias)
    comparisons = latest_comparisons(platform, job.name, args.version)
    if not args.json:
        print_table(
            [_comparison_line(c) for c in comparisons],
            title=f"{job.model.name} v{args.version} vs champion (latest partitions, shadow runs)",
        )
        if not comparisons:
            print(f"no shadow comparison recorded for version {args.version} of {job.model.name}")
        print(f"{job.model.name}@{args.alias}: version {current} -> {args.version}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise BadInputError("not a terminal: pass --yes to confirm the promotion", job=job.name)
        if input("promote? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not promoted")
            return 1
    result = promote(
        platform, job, args.version, alias=args.alias, reason=args.reason, comparisons=comparisons
    )
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        print(
            f"promoted {result.model_name} version {result.to_version} to @{result.alias} "
            f"(was {result.from_version}); lineage run {result.lineage_run_id}"
        )
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from lakescore.ops.governance import erase

    result = erase(
        _platform(args),
        args.entity_file,
        reason=args.reason,
        jobs=args.job,
        vacuum_after=args.vacuum,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print_table(
        [
            {"job": t.job, "table": t.kind, "rows deleted": t.rows_deleted, "version": t.version}
            for t in result.tables
        ],
        title=f"erasure {result.erasure_id}: {result.entities} entities",
    )
    for done in result.vacuum:
        print(f"vacuumed {done['table']}: {done['files_deleted']} files deleted")
    after = result.physically_deletable_after
    jobs = sorted({t.job for t in result.tables})
    print(
        f"time travel to versions before this erasure still returns the erased rows until the "
        f"old files are vacuumed: run `lakescore vacuum --job <job>` ({', '.join(jobs)}) after "
        f"{after:%Y-%m-%d %H:%M} UTC (governance.erasure_retention)"
    )
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    from lakescore.config import load_job
    from lakescore.ops.governance import vacuum

    platform = _platform(args)
    done = vacuum(
        platform,
        load_job(args.job, platform=platform),
        record_lineage=True,
        reason=args.reason,
    )
    if args.json:
        print(json.dumps(done))
    else:
        print_table(done)
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from lakescore.config import load_job
    from lakescore.lakehouse import tables
    from lakescore.ops.forecast import check_window

    platform = _platform(args)
    job = load_job(args.job, platform=platform)
    if not 0 < args.confidence < 1:
        raise BadInputError("--confidence must be between 0 and 1", job=job.name)
    day = None
    rows = args.rows
    if args.ds:
        day = tables.parse_partition_date(args.ds, job=job.name)
        info = tables.partition_info(job.features.table, job.features.partition_column, day)
        if info.files == 0 or info.rows is None:
            raise BadInputError(
                f"partition {day} has no files (or no row counts) in the Delta log",
                job=job.name,
                file=job.features.table,
            )
        rows = info.rows
    if rows is None or rows < 0:
        raise BadInputError("--rows must be a non-negative number", job=job.name)
    check = check_window(job, platform, rows, ds=day, confidence=args.confidence)
    if args.json:
        print(json.dumps(check.to_dict()))
    else:
        print(check.message())
    if check.exceeds or check.at_risk:
        console().print(f"[bold yellow]warning:[/] {check.message()}", soft_wrap=True)
    return 0


def _comparison_line(row: dict[str, Any]) -> dict[str, Any]:
    def num(value: Any, spec: str = ".4f") -> str:
        return "" if value is None else format(value, spec)

    flips = row.get("decision_flip_share")
    return {
        "ds": row.get("ds"),
        "challenger": row.get("model_reference"),
        "vs champion": f"v{row.get('champion_version')}",
        "rows": row.get("rows"),
        "correlation": num(row.get("score_correlation")),
        "mean diff": num(row.get("mean_difference"), "+.4f"),
        "PSI": num(row.get("psi_champion")),
        "flips": "" if flips is None else f"{flips:.2%} @{row.get('decision_threshold')}",
        "status": row.get("challenger_status"),
    }


def cmd_maintenance(args: argparse.Namespace) -> int:
    from lakescore.config import load_job, parse_duration
    from lakescore.ops.recovery import maintain

    platform = _platform(args)
    job = load_job(args.job, platform=platform)
    try:
        stale_after = parse_duration(args.stale_after)
    except ValueError as exc:
        raise BadInputError(str(exc), job=args.job, key="--stale-after") from None
    if args.retention_hours < 0:
        raise BadInputError("must be >= 0", job=args.job, key="--retention-hours")
    report = maintain(
        platform,
        job,
        stale_after=stale_after,
        retention_hours=args.retention_hours,
        dry_run=args.dry_run,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    for item in report.abandoned:
        print(f"abandoned attempt {item['run_id']} (died in {item['last_stage']}): recorded")
    for folder in report.removed_staging:
        print(f"removed staging {folder}")
    for uri, done in report.compacted.items():
        if "error" in done:
            print(f"not compacted {uri}: {done['error']}")
        elif done["files_removed"]:
            print(f"compacted {uri}: {done['files_removed']} files -> {done['files_added']}")
    verb = "deleted" if report.orphans_deleted else "would delete"
    print(
        f"{job.name}: {len(report.abandoned)} abandoned attempts recorded, "
        f"{len(report.removed_staging)} staging folders removed, {verb} "
        f"{len(report.orphan_files)} unreferenced files of {job.output.table}"
    )
    return 0


def _new_job(args: argparse.Namespace) -> int:
    from lakescore.ml.scaffold import run_command

    return run_command(_platform(args), args)


COMMANDS = {
    "score": cmd_score,
    "validate": cmd_score,
    "sql": cmd_sql,
    "history": cmd_history,
    "jobs": cmd_jobs,
    "demo": cmd_demo,
    "airflow": cmd_airflow,
    "driver": cmd_driver,
    "report": cmd_report,
    "rollback": cmd_rollback,
    "erase": cmd_erase,
    "vacuum": cmd_vacuum,
    "forecast": cmd_forecast,
    "promote": cmd_promote,
    "maintenance": cmd_maintenance,
    "new-job": _new_job,
}


def main(argv: Sequence[str] | None = None) -> int:
    from rich.markup import escape  # error texts are plain text, never markup

    args = _parser().parse_args(argv)
    if args.verbose:  # Spark's task-failure stack traces too (lakescore.spark)
        os.environ["LAKESCORE_VERBOSE"] = "1"
    try:
        return COMMANDS[args.command](args)
    except LakescoreError as exc:
        if args.verbose:
            traceback.print_exc()
        console().print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console().print("[bold red]interrupted[/]")
        return 130
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        from lakescore.redaction import redact

        first = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
        console().print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(first)} (use -v for details)",
            soft_wrap=True,
        )
        return 1


def entry(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``lakescore`` command: :func:`main`, then exit without the interpreter's last
    garbage collections. After a run, those walk everything it imported (MLflow,
    scikit-learn, Spark's py4j proxies) for about a second and free nothing that matters:
    files are closed and lineage is written, and the JVM stops Spark in its own shutdown hook
    when this process ends."""
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    gc.disable()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
