"""Airflow operators of a scoring DAG. Each is thin: it hands the work to the lakescore library
(the same code the CLI runs), so tests exercise that code directly.

Bad input (a malformed ``ds``, an unknown conf key, an unknown model alias, a signature that
does not match the feature table) raises :class:`AirflowFailException`: retrying cannot fix
it, so the task fails at once with the library's one-line message. Anything else (registry
unreachable, Spark failure) raises normally and gets the job's retries.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from lakescore.orchestration import BadInputError

# dag_run.conf keys a run accepts; anything else fails the run before anything is read.
RUN_CONF_KEYS = ("ds", "model_version", "shadow")
JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"


def _load(job_name: str, conf_dir: str | None) -> tuple[Any, Any]:
    from lakescore.orchestration import load_job, load_platform

    platform = load_platform(conf_dir)
    return platform, load_job(job_name, platform=platform)


def partition_for_run(
    conf: dict[str, Any],
    logical_date: datetime | None,
    run_after: datetime | None,
    offset_days: int,
    *,
    job: str,
    max_future_days: int | None = None,
) -> date:
    """The partition a DAG run scores.

    ``conf["ds"]`` when the run was triggered with one (backfills by hand); otherwise the
    run's logical date (scheduled runs, ``airflow backfill create``), or ``run_after`` for a
    manual trigger without a logical date; shifted by ``partition_offset_days``.
    """
    from lakescore.orchestration import MAX_FUTURE_DAYS, parse_partition_date

    ahead = MAX_FUTURE_DAYS if max_future_days is None else max_future_days

    unknown = sorted(set(conf) - set(RUN_CONF_KEYS))
    if unknown:
        raise BadInputError(
            f"unknown key(s) {unknown} in the run's conf (allowed: {', '.join(RUN_CONF_KEYS)})",
            job=job,
            key=unknown[0],
        )
    if conf.get("ds") not in (None, ""):
        return parse_partition_date(str(conf["ds"]), job=job, max_future_days=ahead)
    moment = logical_date or run_after
    if moment is None:
        raise BadInputError("the run has neither conf.ds nor a logical date", job=job, key="ds")
    return parse_partition_date(
        moment.date() + timedelta(days=offset_days), job=job, max_future_days=ahead
    )


class ResolvePartitionOperator(BaseOperator):
    """Decide and validate the run's partition; push it (``YYYY-MM-DD``) as the XCom."""

    ui_color = "#e8f4fd"

    def __init__(self, *, job_name: str, conf_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.conf_dir = conf_dir

    def execute(self, context: Any) -> str:
        _, job = _load(self.job_name, self.conf_dir)
        dag_run = context["dag_run"]
        try:
            ds = partition_for_run(
                dict(dag_run.conf or {}),
                dag_run.logical_date,
                getattr(dag_run, "run_after", None),
                job.schedule.partition_offset_days,
                job=job.name,
                max_future_days=job.schedule.max_future_days,
            )
        except BadInputError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info(
            "job %s: this run scores partition %s=%s", job.name, job.features.partition_column, ds
        )
        return ds.isoformat()


class FeaturePartitionSensor(BaseSensorOperator):
    """Wait (reschedule mode: no worker slot held) until the feature partition exists.

    Reads only the Delta log with delta-rs: no JVM, no data files.
    """

    template_fields: Sequence[str] = ("ds",)
    ui_color = "#fdf6e3"

    def __init__(
        self, *, job_name: str, ds: str, conf_dir: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.job_name = job_name
        self.ds = ds
        self.conf_dir = conf_dir

    def poke(self, context: Any) -> bool:
        from lakescore.orchestration import parse_partition_date, partition_info, table_exists

        platform, job = _load(self.job_name, self.conf_dir)
        day = parse_partition_date(self.ds, job=job.name)
        if not table_exists(job.features.table):
            self.log.info("feature table %s does not exist yet", job.features.table)
            return False
        info = partition_info(job.features.table, job.features.partition_column, day)
        self.log.info(
            "feature partition %s=%s of %s: %d files, %s rows (table version %d)",
            job.features.partition_column,
            day,
            job.features.table,
            info.files,
            "?" if info.rows is None else f"{info.rows:,}",
            info.version,
        )
        if info.files > 0 and job.schedule.window is not None:
            self._check_batch_window(platform, job, day, info.rows, context)
        return info.files > 0

    def _check_batch_window(
        self, platform: Any, job: Any, day: date, rows: int | None, context: Any
    ) -> None:
        """Before anything is scored: forecast the run time of this partition from the job's
        history and warn (``airflow.on_window_overflow: warn``, lineage row ``window_check``)
        or fail the run (``fail``) when it exceeds ``schedule.window``."""
        from lakescore.orchestration import AirflowIds, check_window, record_window_warning

        if rows is None:
            self.log.warning("batch window: the Delta log has no row counts; no forecast")
            return
        try:
            check = check_window(job, platform, rows, ds=day)
        except Exception:  # a forecast must never stop a run it cannot judge
            self.log.warning("batch window: no forecast (lineage unreadable)", exc_info=True)
            return
        if not (check.exceeds or check.at_risk):
            self.log.info("batch window: %s", check.message())
            return
        self.log.warning("lakescore BATCH WINDOW: %s", check.message())
        ti = context["ti"]
        record_window_warning(
            platform,
            check,
            airflow=AirflowIds(
                dag_id=context["dag_run"].dag_id,
                run_id=context["dag_run"].run_id,
                task_id=ti.task_id,
                try_number=ti.try_number,
            ),
        )
        if check.exceeds and job.airflow.on_window_overflow == "fail":
            raise AirflowFailException(
                f"{check.message()} (airflow.on_window_overflow: fail; nothing was scored)"
            )

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            raise AirflowSensorTimeout(
                f"job {self.job_name!r}: feature partition {self.ds} did not appear within "
                f"{timedelta(seconds=self.timeout)}; nothing was scored or published"
            ) from None


class ResolveModelOperator(BaseOperator):
    """``name@alias`` -> one pinned version for the whole run (a conf ``model_version`` wins),
    checked against the feature table's schema. The version is the XCom."""

    template_fields: Sequence[str] = ("ds", "model_version")
    ui_color = "#eef7ee"

    def __init__(
        self,
        *,
        job_name: str,
        ds: str,
        model_version: str | int | None = None,
        conf_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.ds = ds
        self.model_version = model_version
        self.conf_dir = conf_dir

    def execute(self, context: Any) -> int:
        from lakescore.orchestration import check_signature, resolve_model_version, table_columns

        platform, job = _load(self.job_name, self.conf_dir)
        pinned = _optional_int(self.model_version)
        try:
            model = resolve_model_version(platform, job.model, pinned, job=job.name)
            schema = table_columns(job.features.table)
            explicit = job.features.columns if isinstance(job.features.columns, list) else None
            check_signature(model, schema, explicit, job=job.name, table=job.features.table)
        except BadInputError as exc:
            raise AirflowFailException(str(exc.with_context(ds=self.ds))) from None
        self.log.info(
            "job %s, partition %s: %s resolved to version %d (run %s)",
            job.name,
            self.ds,
            job.model.reference if pinned is None else f"pinned v{pinned}",
            model.version,
            model.run_id,
        )
        return model.version


def _optional_int(value: Any) -> int | None:
    if value in (None, "", "None", "null"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AirflowFailException(f"model_version must be an integer, got {value!r}") from None


class ScorePartitionOperator(SparkSubmitOperator):
    """``spark-submit jobs/<step>.py --job J --ds D --model-version N`` with the Spark conf of
    the job's profile (the same :func:`lakescore.spark.spark_conf` the CLI session uses).

    ``step="validate"``: Great Expectations on the partition only, at the feature table's
    current version; the task's XCom is that version. ``step="score"`` with
    ``input_version`` set: score that same snapshot, reusing the validation outcome.

    The master comes from the Airflow connection ``<spark_conn_prefix><profile>``; when the
    deployment defines none, the profile's master is used. The score job writes the lineage
    row itself, with this task's Airflow ids (spark-submit inherits ``AIRFLOW_CTX_*``).

    When a warm driver (``lakescore driver``, platform ``driver:``) answers, the task runs
    there instead, with the same arguments and this task's ids, its progress in this log:
    no JVM start, no MLflow or Great Expectations import. When none is configured, none
    answers or it refuses the request (another conf folder or Spark profile), the task logs
    one line why and spark-submits as above.
    """

    ui_color = "#fbe9e7"

    def __init__(
        self,
        *,
        job_name: str,
        ds: str,
        model_version: str,
        profile: str,
        conn_prefix: str,
        step: str = "score",
        input_version: str | None = None,
        conf_dir: str | None = None,
        shadow: str | None = None,
        **kwargs: Any,
    ) -> None:
        if step not in ("score", "validate"):
            raise ValueError(f"step must be 'score' or 'validate', not {step!r}")
        args = ["--job", job_name, "--ds", ds, "--model-version", model_version]
        if input_version is not None:
            args += ["--input-version", input_version]
        if step == "score" and input_version is not None:
            args += ["--validated"]
        if step == "score" and shadow is not None:
            args += ["--shadow", shadow]  # templated: "on" / "off" (the DAG's `shadow` param)
        if conf_dir:
            args += ["--conf", conf_dir]
        kwargs.setdefault("openlineage_inject_parent_job_info", True)
        super().__init__(
            application=str(JOBS_DIR / f"{step}.py"),
            application_args=args,
            # "standalone+spot" -> connection lakescore_spark_standalone_spot
            conn_id=f"{conn_prefix}{profile.replace('+', '_')}",
            name=f"lakescore-{step}-{job_name}",
            **kwargs,
        )
        self.step = step
        self.job_name = job_name
        self.profile = profile
        self.conf_dir = conf_dir

    def execute(self, context: Any) -> int | None:
        platform, _ = _load(self.job_name, self.conf_dir)
        if not self._run_on_driver(platform, context):
            self._spark_submit(platform, context)
        return self._after_run(context)

    _on_driver = False

    def _run_on_driver(self, platform: Any, context: Any) -> bool:
        """Run this task on the warm driver: True when it did (exit 2 raises
        AirflowFailException, another failure raises for a retry); False, after one log line
        why, when the task should spark-submit instead."""
        from lakescore.orchestration import (
            DriverClient,
            DriverLost,
            DriverUnavailable,
            describe_event,
        )

        client = DriverClient.for_platform(platform)
        if client is None:
            self.log.info(
                "lakescore driver: off (driver.enabled, LAKESCORE_DRIVER_URL): spark-submit"
            )
            return False

        def log_event(event: dict[str, Any]) -> None:
            if line := describe_event(event):
                self.log.info("driver: %s", line)

        try:
            health = client.health()
            self.log.info(
                "lakescore driver at %s: profile %s, Spark app %s, up %.0fs, %d runs served, "
                "code %s",
                client.url,
                health.get("profile"),
                health.get("spark_app_id"),
                health.get("uptime_s") or 0,
                health.get("runs_served") or 0,
                health.get("code_version"),
            )
            self._on_driver = True
            outcome = client.run(self._driver_request(platform, context), on_event=log_event)
        except DriverUnavailable as exc:
            self._on_driver = False
            self.log.info("lakescore driver not used (%s): spark-submit", exc)
            return False
        except DriverLost as exc:
            raise AirflowException(str(exc)) from None
        if outcome.exit_code == 2:  # bad input: retrying cannot help
            raise AirflowFailException(outcome.error or f"job {self.job_name!r}: bad input")
        if outcome.exit_code != 0:
            raise AirflowException(outcome.error or f"job {self.job_name!r}: the run failed")
        return True

    def _driver_request(self, platform: Any, context: Any) -> Any:
        """The spark-submit arguments (rendered) as the driver's request, plus this task's
        Airflow ids: the same run either way."""
        from lakescore.orchestration import RunBody, TaskIds

        args, options = list(self.application_args or []), {}
        while args:
            flag = args.pop(0)
            options[flag] = True if flag == "--validated" else args.pop(0)
        ti = context["ti"]
        try:
            return RunBody(
                job=options["--job"],
                step=self.step,
                ds=options.get("--ds"),
                from_ds=options.get("--from"),
                to_ds=options.get("--to"),
                model_version=_optional_int(options.get("--model-version")),
                input_version=_optional_int(options.get("--input-version")),
                validated="--validated" in options,
                shadow=options.get("--shadow", "on") == "on",
                conf_dir=platform.conf_dir,
                profile=self.profile,
                airflow=TaskIds(
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    try_number=ti.try_number,
                ),
            )
        except ValueError as exc:
            raise AirflowFailException(f"job {self.job_name!r}: {exc}") from None

    def on_kill(self) -> None:
        if self._on_driver:  # the driver cancels a run whose caller went away
            self.log.info("stopping: the driver cancels this run when the connection closes")
            return
        super().on_kill()

    def _spark_submit(self, platform: Any, context: Any) -> None:
        from lakescore.orchestration import spark_conf

        conf = spark_conf(platform, self.profile)
        master = conf.pop("spark.master")
        self.jars = conf.pop("spark.jars")
        self.conf = {**conf, **(self.conf or {})}
        conn_env = f"AIRFLOW_CONN_{self._conn_id.upper()}"
        if conn_env not in os.environ:
            os.environ[conn_env] = json.dumps({"conn_type": "spark", "host": master})
        # spark-submit and the driver's Python must be this environment's.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        if self.conf_dir:
            os.environ.setdefault("LAKESCORE_CONF", self.conf_dir)
        try:
            super().execute(context)
        except Exception as exc:
            # The score job exits 2 for bad input (see lakescore.cli): retrying cannot help.
            if "Error code is: 2." in str(exc):
                raise AirflowFailException(
                    f"job {self.job_name!r}: the scoring job rejected its input (exit code 2); "
                    "its one-line error is at the end of the spark-submit log above and in the "
                    "lineage table"
                ) from None
            raise

    def _after_run(self, context: Any) -> int | None:
        """This attempt's lineage row (however it ran): the validate task's XCom (the input
        version it checked) and the OpenLineage facets."""
        try:  # feeds XCom and the OpenLineage facets; the run itself already succeeded
            self._published = self._lineage_of_this_attempt(context)
        except Exception:
            self.log.warning("could not read this attempt's lineage row", exc_info=True)
        if self.step == "validate":
            if not self._published:
                raise AirflowFailException(
                    f"job {self.job_name!r}: validation finished but left no lineage row"
                )
            self.log.info(
                "validation %s: %s expectations, %s failed (report: %s)",
                self._published["validation_status"],
                self._published["validation_evaluated"],
                self._published["validation_failed"],
                self._published["validation_report"],
            )
            return self._published["input_version"]
        return None

    _published: dict[str, Any] | None = None

    def _lineage_of_this_attempt(self, context: Any) -> dict[str, Any] | None:
        from lakescore.orchestration import find_lineage

        platform, job = _load(self.job_name, self.conf_dir)
        ti = context["ti"]
        rows = find_lineage(
            platform.lineage_table,
            job=job.name,
            airflow_run_id=ti.run_id,
            airflow_task_id=ti.task_id,
            airflow_try_number=ti.try_number,
            status="succeeded",
        )
        return rows[-1] if rows else None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: feature table in, prediction table out (with their Delta versions),
        and the pinned model as a run facet.

        Uses what ``execute`` read from the lineage table: the OpenLineage listener calls
        this in a forked process, where delta-rs (a tokio runtime) must not be used again.
        """
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import dataset_version_dataset

        _, job = _load(self.job_name, self.conf_dir)
        row = self._published or {}

        def version_facet(version: Any) -> dict[str, Any]:
            if version is None:
                return {}
            return {"version": dataset_version_dataset.DatasetVersionDatasetFacet(str(version))}

        if self.step == "validate":
            return OperatorLineage(
                inputs=[
                    InputDataset(
                        "file", job.features.table, facets=version_facet(row.get("input_version"))
                    )
                ]
            )
        outputs = [
            OutputDataset("file", job.output.table, facets=version_facet(row.get("output_version")))
        ]
        shadow = json.loads(row.get("details") or "{}").get("shadow") or {}
        if shadow.get("version") is not None:  # challengers published to the shadow table
            outputs.append(
                OutputDataset("file", job.shadow_table, facets=version_facet(shadow["version"]))
            )
        return OperatorLineage(
            inputs=[
                InputDataset(
                    "file", job.features.table, facets=version_facet(row.get("input_version"))
                )
            ],
            outputs=outputs,
            run_facets={
                "lakescore_model": model_run_facet(
                    name=job.model.name,
                    version=row.get("model_version"),
                    alias=row.get("model_alias"),
                    model_run_id=row.get("model_run_id"),
                    lakescore_run_id=row.get("run_id"),
                )
            },
        )


class PlanBackfillOperator(BaseOperator):
    """The backfill DAG's plan: the run's ``from`` / ``to`` (conf or params) split into chunks
    of ``chunk_days`` days; the XCom is the list ``[{"from": D1, "to": D2}, ...]`` the
    scoring task maps over. A reversed or malformed range fails here, before any Spark."""

    ui_color = "#e8f4fd"

    def __init__(self, *, job_name: str, conf_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.conf_dir = conf_dir

    def execute(self, context: Any) -> list[dict[str, str]]:
        from lakescore.orchestration import chunk_days, range_days

        _, job = _load(self.job_name, self.conf_dir)
        params = {**(context.get("params") or {}), **(context["dag_run"].conf or {})}
        try:
            if not params.get("from") or not params.get("to"):
                raise BadInputError(
                    "a backfill needs conf 'from' and 'to' (YYYY-MM-DD)", job=job.name
                )
            days = range_days(params["from"], params["to"], job=job)
            chunks = chunk_days(days, int(params.get("chunk_days") or 7))
        except (BadInputError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info(
            "job %s: backfill %s..%s, %d partitions in %d chunks",
            job.name,
            days[0],
            days[-1],
            len(days),
            len(chunks),
        )
        return [{"from": c[0].isoformat(), "to": c[-1].isoformat()} for c in chunks]


class ScoreRangeOperator(ScorePartitionOperator):
    """``spark-submit jobs/score.py --job J --from D1 --to D2 --model-version N``: one Spark
    application scores (and validates) every day of one chunk of a backfill, each day its own
    publish and lineage row. Mapped over :class:`PlanBackfillOperator`'s chunks."""

    def __init__(self, *, chunk: dict[str, str], **kwargs: Any) -> None:
        super().__init__(ds=chunk["from"], **kwargs)
        args = list(self.application_args)
        at = args.index("--ds")
        args[at : at + 2] = ["--from", chunk["from"], "--to", chunk["to"]]
        self.application_args = args
        self.chunk = chunk


def model_run_facet(**fields: Any) -> Any:
    """A custom OpenLineage run facet carrying the pinned model version of the run."""
    import attrs
    from openlineage.client.facet_v2 import RunFacet

    global _ModelRunFacet
    if _ModelRunFacet is None:

        @attrs.define
        class LakescoreModelRunFacet(RunFacet):
            name: str
            version: int | None = None
            alias: str | None = None
            model_run_id: str | None = None
            lakescore_run_id: str | None = None

        _ModelRunFacet = LakescoreModelRunFacet
    return _ModelRunFacet(**fields)


_ModelRunFacet: Any = None


class RecordLineageOperator(BaseOperator):
    """Confirm the run's lineage row (written by the scoring job) and log its summary.

    Fails if the scoring task succeeded but no lineage row says so: lineage must never be
    silently missing.
    """

    template_fields: Sequence[str] = ("ds",)
    ui_color = "#f3e5f5"

    def __init__(
        self, *, job_name: str, ds: str, conf_dir: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.ds = ds
        self.conf_dir = conf_dir

    def execute(self, context: Any) -> dict[str, Any]:
        from lakescore.orchestration import find_lineage

        platform, job = _load(self.job_name, self.conf_dir)
        dag_run = context["dag_run"]
        rows = find_lineage(
            platform.lineage_table,
            job=job.name,
            airflow_dag_id=dag_run.dag_id,
            airflow_run_id=dag_run.run_id,
            status="succeeded",
        )
        if not rows:
            raise AirflowFailException(
                f"job {job.name!r}, partition {self.ds}: no succeeded lineage row for dag run "
                f"{dag_run.run_id} in {platform.lineage_table}"
            )
        row = rows[-1]
        summary = {
            key: row[key]
            for key in (
                "run_id",
                "ds",
                "input_version",
                "input_rows",
                "model_name",
                "model_version",
                "output_table",
                "output_version",
                "output_rows",
                "duration_s",
                "rows_per_s",
                "executor_seconds",
                "spark_app_id",
            )
        }
        summary["ds"] = str(summary["ds"])
        self.log.info(
            "report: /lakescore/reports/%s in this Airflow (menu: Scoring reports), or "
            "`lakescore report --job %s`",
            job.name,
            job.name,
        )
        self.log.info(
            "published %s rows of %s=%s with %s v%s -> %s version %s in %.1fs (%s rows/s)",
            f"{row['output_rows']:,}",
            job.features.partition_column,
            row["ds"],
            row["model_name"],
            row["model_version"],
            row["output_table"],
            row["output_version"],
            row["duration_s"] or 0.0,
            f"{row['rows_per_s'] or 0:,.0f}",
        )
        return summary
