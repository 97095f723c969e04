"""One scoring run of job J for partition ds: check, resolve, score, stage, audit, publish, record.

Write-audit-publish: scores are written where no reader sees them first (files in the
prediction table's folder that no Delta version refers to, or, with challengers, a private
staging folder); only an audit that passes lets them into the prediction table, in one atomic
Delta commit that replaces partition ds.
Any failure leaves the prediction table exactly as it was, and every attempt (success or
failure) leaves one lineage row.

Cheap, JVM-free checks come first (partition exists, entity keys present), so the commonest bad
input fails in a second without starting Spark. The JVM then starts in the background while the
model resolves (signature against the feature table) and loads; a model that fails those checks
fails the run before any Spark work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore import guards, layout, tables
from lakescore import shadow as shadow_scoring
from lakescore.config import PlatformConfig, ScoringJob
from lakescore.cost import run_cost
from lakescore.errors import (
    BadInputError,
    DriftFailure,
    LakescoreError,
    as_lakescore_error,
)
from lakescore.executors import executor_losses
from lakescore.file_scoring import (
    FileOutput,
    PartitionRead,
    WrittenFiles,
    plan_partition_read,
    score_partition_files,
    write_partition_files,
)
from lakescore.lineage import AirflowIds, LineageRecord, append_lineage, utcnow
from lakescore.models import (
    ProbabilityScorer,
    ResolvedModel,
    check_signature,
    download_model,
    resolve_model_version,
)
from lakescore.monitoring import (
    ScoreDistribution,
    append_metrics,
    distribution_expressions,
    distribution_from_metrics,
    metrics_row,
)
from lakescore.recovery import AttemptMarker, fault_point, recover_abandoned
from lakescore.redaction import redact
from lakescore.scoring import (
    ModelSlot,
    ValueCheck,
    audit_expressions,
    audit_from_metrics,
    bad_value_counts,
    require_clean_audit,
    score_models,
    warm_python_workers,
    with_prediction_columns,
    written_stats,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class ProgressReporter:
    """Receives stage changes and task progress. The CLI draws a bar; Airflow logs lines."""

    def stage(self, name: str, detail: str = "") -> None:  # pragma: no cover - interface
        pass

    def tasks(self, done: int, total: int) -> None:  # pragma: no cover - interface
        pass


class _RedactingProgress(ProgressReporter):
    """Every stage line goes through :func:`lakescore.redaction.redact` (no credentials)."""

    def __init__(self, inner: ProgressReporter) -> None:
        self.inner = inner

    def stage(self, name: str, detail: str = "") -> None:
        self.inner.stage(name, redact(detail))

    def tasks(self, done: int, total: int) -> None:
        self.inner.tasks(done, total)


class LogProgress(ProgressReporter):
    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._last = -1

    def stage(self, name: str, detail: str = "") -> None:
        self.log(f"[{name}] {detail}".rstrip())

    def tasks(self, done: int, total: int) -> None:
        if done != self._last and total:
            self._last = done
            self.log(f"[score] tasks {done}/{total}")


@dataclass
class RunResult:
    job: str
    ds: date
    run_id: str
    status: str
    rows: int
    model_name: str
    model_version: int
    input_table: str
    input_version: int
    output_table: str
    output_version: int | None
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "ds": self.ds.isoformat(),
            "run_id": self.run_id,
            "status": self.status,
            "rows": self.rows,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "input_table": self.input_table,
            "input_version": self.input_version,
            "output_table": self.output_table,
            "output_version": self.output_version,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }


def new_run_id(job: str, ds: date, started: datetime) -> str:
    return f"{job}-{ds.isoformat()}-{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


class _Stages:
    """Times named stages into ``seconds`` and tells the progress reporter."""

    def __init__(self, progress: ProgressReporter) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self.on_stage: Callable[[str], None] | None = None

    @contextmanager
    def __call__(self, name: str, detail: str = "") -> Iterator[None]:
        self.progress.stage(name, detail)
        if self.on_stage:
            self.on_stage(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def score_partition(
    job: ScoringJob,
    ds: str | date,
    *,
    platform: PlatformConfig,
    spark: SparkSession | None = None,
    model_version: int | None = None,
    run_id: str | None = None,
    txn_version: int | None = None,
    airflow: AirflowIds | None = None,
    progress: ProgressReporter | None = None,
    input_version: int | None = None,
    validate_only: bool = False,
    validated: bool = False,
    action: str | None = None,
    reason: str | None = None,
    lineage_details: dict[str, Any] | None = None,
    shadow: bool = True,
) -> RunResult:
    """Score partition ``ds`` of ``job`` and publish it; see the module docstring.

    ``model_version`` pins a version (wins over the job's alias). ``run_id``/``txn_version``
    let a retried attempt of the same run reuse its identity so a publish that already landed
    is not repeated. ``input_version`` pins the feature table's snapshot. Airflow splits a run
    in two Spark applications: ``validate_only`` stops after validation (lineage action
    ``validate``); the scoring task then passes ``validated`` (and the same ``input_version``)
    so Great Expectations does not run twice. ``action``/``reason``/``lineage_details`` mark
    the lineage row of a re-score that is not a plain run (``rollback``). ``shadow=False``
    leaves the job's challengers out of this run (the shadow table is not touched). Raises
    :class:`BadInputError` or
    :class:`ScoringFailure`; lineage has the attempt either way.
    """
    progress = _RedactingProgress(progress or ProgressReporter())
    started = utcnow()
    day = tables.parse_partition_date(
        ds, job=job.name, max_future_days=job.schedule.max_future_days
    )
    run_id = run_id or new_run_id(job.name, day, started)
    txn_version = txn_version or int(started.timestamp() * 1000)
    stages = _Stages(progress)
    record = LineageRecord(
        attempt_id=uuid.uuid4().hex,
        run_id=run_id,
        action=action or ("validate" if validate_only else "score"),
        job=job.name,
        ds=day,
        status="running",
        started_at=started,
        finished_at=started,
        airflow=airflow or AirflowIds.from_env(),
        input_table=job.features.table,
        output_table=job.output.table,
        reason=reason,
        details=dict(lineage_details or {}),
    )
    staging_dir = Path(platform.staging_root) / job.name / day.isoformat() / run_id
    # A driver killed earlier left a marker and maybe staged files: record it, clean it up.
    _recover_abandoned_attempts(platform, job, progress)
    marker = AttemptMarker(staging_dir, record)
    stages.on_stage = marker.write
    try:
        # Probe the staging folder first: a file in the way, a read-only or full disk fails
        # here with the path named (the marker and Spark's write would fail less clearly).
        guards.prepare_staging(staging_dir, job=job.name)
        marker.write()
        result = _run(
            _Request(input_version, validate_only, validated, shadow),
            job,
            day,
            platform,
            spark,
            model_version,
            run_id,
            txn_version,
            stages,
            record,
            staging_dir,
            progress,
        )
    except Exception as exc:
        explained = (
            None
            if isinstance(exc, LakescoreError)
            else guards.explain_failure(exc, staging_dir=staging_dir, table=job.features.table)
        )
        err = as_lakescore_error(explained or exc, job=job.name, ds=day.isoformat())
        for uri in (job.output.table, job.shadow_table):
            with contextlib.suppress(Exception):  # the run's own error is the one to report
                tables.remove_uncommitted_run_folder(
                    uri, job.features.partition_column, day, run_id
                )
        record.status = "failed"
        record.error_class = type(err).__name__
        record.error = str(err)[:4000]
        try:
            _finish(record, stages, platform)
        except Exception as lineage_exc:  # the run's own error stays the one raised
            if err.file != platform.lineage_table:
                first = str(lineage_exc).strip().splitlines()[0] if str(lineage_exc) else ""
                err.message += f" (this attempt could not be recorded in lineage: {first[:200]})"
                err.with_context()
        else:  # kept if lineage failed: the next run records the attempt as abandoned
            with contextlib.suppress(OSError):
                marker.remove()
        if err is exc:
            raise
        raise err from exc
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    record.status = "succeeded"
    _finish(record, stages, platform)
    marker.remove()
    result.stage_seconds = dict(stages.seconds)
    result.seconds = record.duration_s or result.seconds
    return result


def _finish(record: LineageRecord, stages: _Stages, platform: PlatformConfig) -> None:
    record.finished_at = utcnow()
    record.duration_s = (record.finished_at - record.started_at).total_seconds()
    record.stage_seconds = dict(stages.seconds)
    if record.output_rows and record.duration_s:
        record.rows_per_s = record.output_rows / record.duration_s
    if priced := run_cost(record.executor_seconds, record.output_rows, platform.cost):
        record.cost, record.cost_per_1k = priced.cost, priced.cost_per_1k
    stages.progress.stage("lineage", f"{record.status}: {platform.lineage_table}")
    append_lineage(platform.lineage_table, [record])


@dataclass(frozen=True)
class _Request:
    input_version: int | None
    validate_only: bool
    validated: bool
    shadow: bool = True


def _run(
    request: _Request,
    job: ScoringJob,
    day: date,
    platform: PlatformConfig,
    spark: SparkSession | None,
    model_version: int | None,
    run_id: str,
    txn_version: int,
    stages: _Stages,
    record: LineageRecord,
    staging_dir: Path,
    progress: ProgressReporter,
) -> RunResult:
    keys = job.features.entity_keys
    part_col = job.features.partition_column

    with stages("check", f"partition {day} of {job.features.table}"):
        info = tables.partition_info(job.features.table, part_col, day, request.input_version)
        record.input_version = info.version
        if info.files == 0:
            raise BadInputError(
                f"partition {part_col}={day} not found in the feature table "
                f"(table version {info.version})",
                file=job.features.table,
            )
        record.input_rows = info.rows
        guards.check_lineage_appendable(platform.lineage_table, job=job.name)
        feature_schema = tables.table_columns(job.features.table, info.version)
        for key in keys:
            if key not in feature_schema:
                raise BadInputError(
                    "entity key column is missing from the feature table",
                    file=job.features.table,
                    column=key,
                    key="features.entity_keys",
                )

    # The JVM starts in the background once the partition is known to exist (a missing
    # partition, the commonest bad input, never starts one); its launch and the Python
    # workers' warm-up (seconds) overlap the model's resolution, download and load.
    empty_fails = info.rows == 0 and job.output.on_empty_partition == "fail"
    starting = _BackgroundSession(platform, job) if spark is None and not empty_fails else None
    try:
        model, features, challengers = _resolve_models(
            request, job, platform, model_version, feature_schema, record, stages, progress
        )
        if empty_fails:
            raise BadInputError(
                f"partition {part_col}={day} of the feature table is empty "
                "(set output.on_empty_partition: publish_empty to publish an empty partition)",
                file=job.features.table,
            )
        with stages("load_model"):
            model_dir = download_model(platform, model, job=job.name)
            scorer = guards.check_model_loadable(model_dir, model, job=job.name)
            shadow_scoring.load_challengers(platform, job, challengers)
    except BaseException:
        if starting is not None:
            starting.settle()  # Spark's start-up output comes before the error, not after it
        raise

    with stages("spark_start"):
        if starting is not None:
            spark = starting.session()
        assert spark is not None
        sc = spark.sparkContext
        record.spark_app_id = sc.applicationId
        record.spark_master = sc.master
        sc.setJobGroup(run_id, f"lakescore {job.name} {day}", interruptOnCancel=True)
        shadow_scoring.keep_scan_locations(spark)
        shipped, estimator = _ship_model(spark, model_dir, model, scorer)
        shadow_scoring.ship_challengers(challengers, partial(_ship_model, spark))

    # The partition as a Spark DataFrame costs a Delta snapshot load in the JVM (about a second
    # on a fresh session); the file reader below does not need it, so it is built on demand.
    source: DataFrame | None = None

    def partition_df() -> DataFrame:
        nonlocal source
        if source is None:
            source = tables.read_partition(spark, job.features.table, part_col, day, info.version)
        return source

    input_rows = info.rows
    rejects = None
    if job.validation.enabled:
        with stages("validate", f"Great Expectations on {part_col}={day}"):
            source, rejects, input_rows = _validate(
                spark,
                job,
                model,
                day,
                run_id,
                info,
                partition_df(),
                platform,
                record,
                progress,
                already_validated=request.validated,
            )
    if request.validate_only:
        partition_df().unpersist()
        return RunResult(
            job=job.name,
            ds=day,
            run_id=run_id,
            status="validated",
            rows=info.rows or 0,
            model_name=model.name,
            model_version=model.version,
            input_table=job.features.table,
            input_version=info.version,
            output_table=job.output.table,
            output_version=None,
            seconds=(utcnow() - record.started_at).total_seconds(),
        )

    guards.prepare_staging(staging_dir, job=job.name)
    schema = tables.table_schema(job.features.table, info.version)
    key_fields = [schema.field(k) for k in keys]
    # Infinite (and, unless allowed, NaN) feature values are found by the scoring pass itself
    # and refused after it, with null and duplicate keys, from the audit of the staged output.
    check = ValueCheck(tuple(features), allow_nan=job.features.allow_nan)
    scored_at = utcnow()
    champion_slot = ModelSlot.of(
        model, str(model_dir), features, shipped_name=shipped, estimator=estimator
    )
    slots = [champion_slot, *shadow_scoring.slots(challengers)]
    # Reading the log's files with pyarrow inside the Python tasks skips Spark's JVM -> Arrow
    # path (2-5x faster score stage in bench/scoring.py). Only when the partition is not
    # already cached for validation/quarantine and the files are local to the workers.
    plan = None
    if rejects is None and (not job.validation.enabled or request.validated):
        plan = _file_plan(spark, job, day, info, slots, keys)
    # The scoring pass writes the files that will be published, in their final layout, into
    # the prediction table's folder (and, with challengers, theirs into the shadow table's);
    # nothing refers to them until the commits after the audit. Before a table's first
    # publish, or with challengers that the tasks cannot write themselves, it stages every
    # model's scores privately and the publish rewrites them.
    data_dir = _direct_output_folder(spark, job, day, run_id, key_fields, challengers, plan)
    record.details["publish_path"] = "commit" if data_dir is not None else "staging"
    active = [c for c in challengers if c.active and c.model is not None]
    with stages("score", f"{input_rows if input_rows is not None else '?'} rows -> staging"):
        batch_rows = max(
            1_000, int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "100000"))
        )
        record.details["score_reader"] = "spark" if plan is None else "files"
        task_files: WrittenFiles | None = None
        out: DataFrame | None = None
        if plan is not None and data_dir is not None:
            # The tasks write the files to publish themselves and return the audit's and the
            # histogram's partial sums: no scored row goes through the JVM.
            output = FileOutput(
                folder=data_dir,
                schema=layout.data_file_schema(
                    layout.prediction_schema(key_fields, part_col), part_col
                ),
                constants={
                    layout.MODEL_NAME: model.name,
                    layout.MODEL_VERSION: int(model.version),
                    layout.RUN_ID: run_id,
                    layout.SCORED_AT: scored_at,
                },
                low=job.audit.score_min,
                high=job.audit.score_max,
                bins=job.monitoring.bins,
            )
            with _watch_tasks(spark, run_id, progress):
                task_files = write_partition_files(
                    spark,
                    plan,
                    slots,
                    keys,
                    [
                        output,
                        *(
                            shadow_scoring.shadow_file_output(
                                c,
                                job=job,
                                ds=day,
                                run_id=run_id,
                                scored_at=scored_at,
                                key_fields=key_fields,
                            )
                            for c in active
                        ),
                    ],
                    batch_rows=batch_rows,
                    check=check,
                )
            observed = task_files.summaries[0].metrics()
        else:
            if plan is not None:
                scored = score_partition_files(
                    spark, plan, slots, keys, batch_rows=batch_rows, check=check
                )
            else:
                _split_for_parallelism(spark, info.size_bytes)
                scored = score_models(partition_df(), slots, keys, check)
            out = with_prediction_columns(
                scored,
                model=model,
                run_id=run_id,
                scored_at=scored_at,
                partition_column=part_col,
                ds=day,
                key_columns=keys,
                extra_columns=[*(slot.score_column for slot in slots[1:]), layout.BAD_VALUES],
            )
            # The audit's and the drift histogram's aggregates ride on the write as observed
            # metrics: no pass of their own over the scored rows.
            from pyspark.sql import Observation

            observation = Observation(f"lakescore_audit_{uuid.uuid4().hex}")
            to_write = out.observe(
                observation,
                *audit_expressions(
                    keys,
                    score_min=job.audit.score_min,
                    score_max=job.audit.score_max,
                    checked=True,
                ),
                *distribution_expressions(
                    job.audit.score_min, job.audit.score_max, job.monitoring.bins, quantiles=False
                ),
            )
            if data_dir is not None:
                to_write = to_write.select(
                    *(c for c in layout.prediction_columns(keys, part_col) if c != part_col)
                )
            with _watch_tasks(spark, run_id, progress):
                to_write.write.mode("errorifexists").parquet(data_dir or str(staging_dir))
            observed = observation.get
        record.details["score_writer"] = "python" if task_files is not None else "spark"
        record.executor_seconds, record.failed_tasks = _task_metrics(spark, run_id)
        record.details["source_scan"] = shadow_scoring.source_scan(
            spark, run_id, job.features.table
        )
        _record_executor_losses(spark, record)
    fault_point("after_staging")

    with stages("audit"):
        written_to = data_dir or str(staging_dir)
        # The staging path reads its files back (challengers, publish rewrite); the commit
        # path needs no Spark DataFrame of them.
        staged = spark.read.parquet(written_to) if data_dir is None else None
        expected = input_rows if input_rows is not None else partition_df().count()
        record.input_rows = info.rows if info.rows is not None else expected
        # Distinct keys and score quantiles: one more read, of the score column and (unless
        # the writing tasks saw every key in increasing order) the key columns.
        proven = task_files.summaries[0].proven_distinct_keys() if task_files else None
        written = written_stats(
            written_to,
            keys,
            lambda: staged or spark.read.parquet(written_to),
            distinct_keys=proven,
        )
        observed = {**observed, "dist_q": written.quantiles}
        audit = audit_from_metrics(
            observed, expected_rows=expected, distinct_keys=written.distinct_keys
        )
        record.details["audit"] = {
            "rows": audit.rows,
            "score_min": audit.score_min,
            "score_max": audit.score_max,
            "score_mean": audit.score_mean,
            "distinct_keys": "key order" if proven is not None else "counted",
        }
        guards.refuse_bad_input(
            audit,
            # failure path only: counted by the writing tasks, or read from the staged flags
            # (the files of the Spark commit path do not keep them: score again)
            lambda: (
                dict(task_files.summaries[0].bad_values)
                if task_files is not None
                else bad_value_counts(staged if staged is not None else out)
            ),
            keys=keys,
            features=features,
            # Validation (policy fail/quarantine) already refused null and duplicate keys.
            check_keys=not job.validation.enabled or job.validation.policy == "warn",
            job=job.name,
            ds=day.isoformat(),
            table=job.features.table,
        )
        require_clean_audit(audit, job=job.name, ds=day.isoformat())
        progress.stage(
            "audit", f"passed: {audit.rows} rows, mean score {audit.score_mean or 0:.4f}"
        )

    with stages("drift"):
        drift = _assess_drift(
            distribution_from_metrics(
                observed, job.audit.score_min, job.audit.score_max, job.monitoring.bins
            ),
            job,
            model,
            day,
            platform,
        )
        record.drift_status = drift.status
        record.psi_previous = drift.psi_previous
        record.psi_baseline = drift.psi_baseline
        metrics = {
            "run_id": run_id,
            "job": job.name,
            "ds": day,
            "model_name": model.name,
            "model_version": model.version,
            "computed_at": utcnow(),
        }
        if drift.status == "fail":
            append_metrics(platform.metrics_table, [metrics_row(drift, **metrics, published=False)])
            raise DriftFailure(
                "score drift above the fail threshold, nothing published: "
                + "; ".join(drift.messages),
                job=job.name,
                ds=day.isoformat(),
            )
        if challengers:
            _compare_challengers(
                staged,
                None
                if task_files is None
                else {c.index: task_files.comparisons[i + 1] for i, c in enumerate(active)},
                challengers,
                job,
                drift,
                progress,
            )
        progress.stage(
            "drift",
            f"{drift.status}: PSI vs previous {_fmt(drift.psi_previous)}, "
            f"vs baseline {_fmt(drift.psi_baseline)}"
            + (f" ({'; '.join(drift.messages)})" if drift.messages else ""),
        )

    _record_executor_losses(spark, record)
    fault_point("before_publish")
    with stages("publish", job.output.table):
        commit = tables.CommitInfo(
            run_id=run_id,
            job=job.name,
            ds=day,
            model_name=model.name,
            model_version=model.version,
            input_table=job.features.table,
            input_version=info.version,
            rows=audit.rows,
        )
        _ensure_prediction_table(spark, job, key_fields)
        if data_dir is not None:
            version = tables.commit_partition_files(
                job.output.table,
                part_col,
                day,
                data_dir,
                commit,
                txn_version,
                expected_rows=audit.rows,
            )
        else:
            assert staged is not None
            version = tables.replace_partition(
                staged.select(*layout.prediction_columns(keys, part_col)),
                job.output.table,
                part_col,
                day,
                commit,
                txn_version,
            )
        record.output_version = version
        record.output_rows = audit.rows
        progress.stage("publish", f"{job.output.table} version {version}")
        append_metrics(platform.metrics_table, [metrics_row(drift, **metrics, published=True)])
        if rejects is not None:
            _publish_rejects(spark, job, day, run_id, rejects, platform, txn_version, record)
    if challengers:
        with stages("shadow", job.shadow_table):
            _publish_challengers(
                spark,
                staged,
                None
                if task_files is None
                else {c.index: task_files.files[i + 1] for i, c in enumerate(active)},
                challengers,
                job,
                day,
                run_id,
                txn_version,
                info.version,
                key_fields,
                model,
                platform,
                record,
                progress,
            )
    fault_point("after_publish")
    if source is not None:
        source.unpersist()

    return RunResult(
        job=job.name,
        ds=day,
        run_id=run_id,
        status="succeeded",
        rows=audit.rows,
        model_name=model.name,
        model_version=model.version,
        input_table=job.features.table,
        input_version=info.version,
        output_table=job.output.table,
        output_version=version,
        seconds=(utcnow() - record.started_at).total_seconds(),
    )


def _resolve_models(
    request: _Request,
    job: ScoringJob,
    platform: PlatformConfig,
    model_version: int | None,
    feature_schema: dict[str, str],
    record: LineageRecord,
    stages: _Stages,
    progress: ProgressReporter,
) -> tuple[ResolvedModel, list[str], list[shadow_scoring.Challenger]]:
    """Pins the champion's version (and the challengers'), checks the signatures against the
    feature table and records the champion in lineage."""
    with stages("resolve_model", job.model.reference):
        model = resolve_model_version(platform, job.model, model_version, job=job.name)
        record.model_name = model.name
        record.model_version = model.version
        record.model_alias = model.alias
        record.model_run_id = model.run_id
        record.model_source = model.source
        explicit = job.features.columns if isinstance(job.features.columns, list) else None
        features = check_signature(
            model, feature_schema, explicit, job=job.name, table=job.features.table
        )
        progress.stage("resolve_model", f"{model.name} version {model.version}")
        challengers: list[shadow_scoring.Challenger] = []
        if request.shadow and job.shadow.enabled and not request.validate_only:
            challengers = shadow_scoring.resolve_challengers(
                platform, job, model, feature_schema, features
            )
            for c in challengers:
                version = f" version {c.model.version}" if c.model else ""
                progress.stage("resolve_model", f"challenger {c.reference}{version}: {c.status}")
    return model, features, challengers


def _compare_challengers(
    staged: DataFrame | None,
    comparisons: dict[int, Any] | None,
    challengers: list[shadow_scoring.Challenger],
    job: ScoringJob,
    drift: Any,
    progress: ProgressReporter,
) -> None:
    """Challenger vs champion statistics, from the scoring tasks' ``comparisons`` (by
    challenger index) or one aggregation over the staged scores; an error here fails the
    challengers, not the run."""
    try:
        if comparisons is not None:
            shadow_scoring.compare_summaries(
                challengers, comparisons, champion_counts=drift.distribution.bin_counts
            )
        elif staged is not None:  # else no challenger was active: nothing to compare
            shadow_scoring.compare(
                staged,
                challengers,
                score_min=job.audit.score_min,
                score_max=job.audit.score_max,
                bins=job.monitoring.bins,
                threshold=job.shadow.decision_threshold,
                champion_counts=drift.distribution.bin_counts,
            )
    except Exception as exc:
        for c in challengers:
            if c.active:
                c.fail(f"comparison failed: {type(exc).__name__}: {exc}")
    for c in challengers:
        if c.comparison is not None:
            comp = c.comparison
            progress.stage(
                "compare",
                f"{c.reference}: corr {_fmt(comp.correlation)}, mean diff "
                f"{_fmt(comp.mean_difference)}, PSI vs champion {_fmt(comp.psi_champion)}, "
                f"flips {_fmt(comp.flip_share)} ({c.status})",
            )


def _publish_challengers(
    spark: SparkSession,
    staged: DataFrame | None,
    files: dict[int, list[str]] | None,
    challengers: list[shadow_scoring.Challenger],
    job: ScoringJob,
    day: date,
    run_id: str,
    txn_version: int,
    input_version: int,
    key_fields: list[Any],
    champion: ResolvedModel,
    platform: PlatformConfig,
    record: LineageRecord,
    progress: ProgressReporter,
) -> None:
    """Shadow table publish + challenger metrics, after the champion's publish. Any failure
    is recorded (lineage details, metrics) and never fails the run."""
    shadow_version = None
    error = None
    try:
        if files is not None:
            shadow_version = shadow_scoring.commit_shadow_files(
                challengers,
                files,
                job=job,
                ds=day,
                run_id=run_id,
                txn_version=txn_version,
                input_version=input_version,
            )
        elif staged is not None:  # else no challenger was active: the shadow table stays
            shadow_version = shadow_scoring.publish_shadow(
                spark,
                staged,
                challengers,
                job=job,
                ds=day,
                run_id=run_id,
                txn_version=txn_version,
                input_version=input_version,
                key_fields=key_fields,
            )
    except Exception as exc:
        error = f"shadow publish failed: {type(exc).__name__}: {str(exc)[:500]}"
        for c in challengers:
            if c.active:
                c.fail(error)
    record.details["shadow"] = {
        "table": job.shadow_table,
        "version": shadow_version,
        "error": error,
        "challengers": [c.summary() for c in challengers],
    }
    try:
        rows = shadow_scoring.metrics_rows(
            challengers,
            run_id=run_id,
            job=job,
            ds=day,
            champion=champion,
            computed_at=utcnow(),
            published=shadow_version is not None,
        )
        if rows:
            append_metrics(platform.metrics_table, rows)
    except Exception as exc:
        record.details["shadow"]["metrics_error"] = f"{type(exc).__name__}: {exc}"
    failed = [c.reference for c in challengers if c.status == "failed"]
    progress.stage(
        "shadow",
        f"{job.shadow_table} version {shadow_version}"
        + (f"; failed challengers: {', '.join(failed)}" if failed else ""),
    )


def _recover_abandoned_attempts(
    platform: PlatformConfig, job: ScoringJob, progress: ProgressReporter
) -> None:
    try:
        found = recover_abandoned(platform, job).abandoned
    except Exception as exc:  # cleanup of an earlier attempt must not stop this one
        progress.stage("recover", f"WARNING: could not check for abandoned attempts: {exc}")
        return
    for item in found:
        progress.stage(
            "recover",
            f"recorded abandoned attempt {item['run_id']} (died in {item['last_stage']}) "
            "and removed its staged files",
        )


def _record_executor_losses(spark: SparkSession, record: LineageRecord) -> None:
    losses = executor_losses(spark)
    if losses is not None:
        record.lost_executors = losses.count
        if losses.reasons:
            record.details["lost_executors"] = losses.reasons


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _validate(
    spark: SparkSession,
    job: ScoringJob,
    model: ResolvedModel,
    day: date,
    run_id: str,
    info: tables.PartitionInfo,
    source: DataFrame,
    platform: PlatformConfig,
    record: LineageRecord,
    progress: ProgressReporter,
    *,
    already_validated: bool = False,
) -> tuple[DataFrame, DataFrame | None, int | None]:
    """Great Expectations on the partition (cached: validation and scoring read it once).

    Returns the rows to score, the rejected rows (quarantine) and the rows expected out.
    ``already_validated``: an earlier ``validate`` attempt of this Airflow run checked this
    snapshot; take its outcome from lineage instead of running the suite again.
    """
    from pyspark import StorageLevel

    from lakescore.validation import (
        ValidationFailed,
        build_rules,
        split_rejects,
        validate_partition,
    )

    previous = tables.previous_partition_rows(
        job.features.table, job.features.partition_column, day, info.version
    )
    # An empty partition only gets here when the job allows publishing it: no row-count band.
    previous_rows = previous[1] if previous and info.rows != 0 else None
    rules = build_rules(job, model, previous_rows, platform.conf_dir)
    source = source.persist(StorageLevel.MEMORY_AND_DISK)
    tracker = spark.sparkContext.statusTracker()
    jobs_before = len(tracker.getJobIdsForGroup(run_id))
    earlier = (
        _earlier_validation(platform, job, day, info.version, record) if already_validated else None
    )
    if earlier is not None:
        outcome = earlier
        progress.stage(
            "validate", f"validated by {record.details['validated_by']}: {outcome.summary()}"
        )
    else:
        outcome = validate_partition(
            source,
            rules,
            job=job.name,
            ds=day.isoformat(),
            report_dir=Path(platform.reports_root) / job.name / day.isoformat() / run_id,
        )
    spark_jobs = len(tracker.getJobIdsForGroup(run_id)) - jobs_before
    record.validation_evaluated = outcome.evaluated
    record.validation_failed = outcome.failed
    record.validation_report = outcome.data_docs or outcome.result_json
    record.details["validation"] = {
        "failures": outcome.failures,
        "spark_jobs": spark_jobs,
        "result_json": outcome.result_json,
    }
    policy = job.validation.policy
    if outcome.failed and policy == "fail":
        record.validation_status = "failed"
        raise ValidationFailed(
            f"validation failed, nothing published: {outcome.summary()} "
            f"(report: {record.validation_report})",
            job=job.name,
            ds=day.isoformat(),
        )
    if policy == "quarantine":
        not_row_level = [f["expectation"] for f in outcome.failures if not f["row_level"]]
        if not_row_level:
            record.validation_status = "failed"
            raise ValidationFailed(
                "validation failed on expectations that cannot be quarantined row by row, "
                f"nothing published: {', '.join(not_row_level)}",
                job=job.name,
                ds=day.isoformat(),
            )
        # With no failures this is an empty rejects set: it clears earlier rejects of the day.
        good, rejects = split_rejects(source, rules if outcome.failed else [])
        rejects = rejects.persist(StorageLevel.MEMORY_AND_DISK)
        rejected = rejects.count() if outcome.failed else 0
        total = info.rows if info.rows is not None else source.count()
        record.rejected_rows = rejected
        fraction = rejected / total if total else 0.0
        if fraction > job.validation.max_reject_fraction:
            record.validation_status = "failed"
            raise ValidationFailed(
                f"{rejected} of {total} rows ({fraction:.2%}) failed row-level expectations, "
                f"above max_reject_fraction {job.validation.max_reject_fraction:.2%}; nothing "
                f"published: {outcome.summary()}",
                job=job.name,
                ds=day.isoformat(),
            )
        record.validation_status = "quarantined" if rejected else "passed"
        progress.stage("validate", f"{rejected} rows quarantined: {outcome.summary()}")
        return good, rejects, total - rejected
    if outcome.failed:
        record.validation_status = "warned"
        progress.stage("validate", f"WARNING (policy warn, scoring anyway): {outcome.summary()}")
    else:
        record.validation_status = "passed"
        progress.stage("validate", f"passed: {outcome.summary()} ({spark_jobs} Spark jobs)")
    return source, None, info.rows


def _earlier_validation(
    platform: PlatformConfig, job: ScoringJob, day: date, input_version: int, record: LineageRecord
) -> Any:
    """The outcome of this Airflow run's ``validate`` attempt on the same snapshot, if any."""
    import json

    from lakescore.lineage import find_lineage
    from lakescore.validation import ValidationOutcome

    if not record.airflow.run_id:
        return None
    rows = find_lineage(
        platform.lineage_table,
        job=job.name,
        action="validate",
        ds=day,
        input_version=input_version,
        airflow_run_id=record.airflow.run_id,
    )
    rows = [r for r in rows if r["validation_status"] is not None]
    if not rows:
        return None
    row = rows[-1]
    details = json.loads(row["details"] or "{}").get("validation", {})
    record.details["validated_by"] = row["run_id"]
    failures = details.get("failures", [])
    return ValidationOutcome(
        status="passed" if not failures else "failed",
        evaluated=row["validation_evaluated"] or 0,
        failed=row["validation_failed"] or 0,
        failures=failures,
        result_json=details.get("result_json"),
        data_docs=row["validation_report"],
    )


def _assess_drift(
    distribution: ScoreDistribution,
    job: ScoringJob,
    model: ResolvedModel,
    day: date,
    platform: PlatformConfig,
) -> Any:
    from lakescore.models import BASELINE_ARTIFACT
    from lakescore.monitoring import assess_drift, load_baseline, previous_published

    artifact = model.tags.get("lakescore.baseline", BASELINE_ARTIFACT)
    return assess_drift(
        distribution,
        previous=previous_published(platform.metrics_table, job.name, day),
        baseline=load_baseline(model.run_id, artifact),
        psi_warn=job.monitoring.psi_warn,
        psi_fail=job.monitoring.psi_fail,
    )


def _publish_rejects(
    spark: SparkSession,
    job: ScoringJob,
    day: date,
    run_id: str,
    rejects: DataFrame,
    platform: PlatformConfig,
    txn_version: int,
    record: LineageRecord,
) -> None:
    """Replace partition ``day`` of the job's rejects table with this run's rejected rows."""
    from pyspark.sql import functions as F

    uri = platform.rejects_table(job.name)
    rows = rejects.withColumn(layout.RUN_ID, F.lit(run_id)).withColumn(
        "rejected_at", F.current_timestamp()
    )
    if not tables.table_exists(uri):
        tables.ensure_table(
            spark,
            uri,
            rows.schema,
            job.features.partition_column,
            f"lakescore rejects of job {job.name}",
        )
    tables.replace_partition(
        rows,
        uri,
        job.features.partition_column,
        day,
        tables.CommitInfo(
            run_id=run_id,
            job=job.name,
            ds=day,
            model_name=record.model_name or "",
            model_version=record.model_version or 0,
            input_table=job.features.table,
            input_version=record.input_version or 0,
            rows=record.rejected_rows or 0,
        ),
        txn_version,
    )


def _ensure_prediction_table(spark: SparkSession, job: ScoringJob, key_fields: list[Any]) -> None:
    from pyspark.sql.pandas.types import from_arrow_schema

    if tables.table_exists(job.output.table):
        return
    schema = layout.prediction_schema(key_fields, job.features.partition_column)
    try:
        tables.ensure_table(
            spark,
            job.output.table,
            from_arrow_schema(schema),
            job.features.partition_column,
            f"lakescore predictions of job {job.name} ({job.model.name})",
        )
    except Exception:
        # Two first runs (different days) raced to create the table: the loser fails, on its
        # commit of version 0 or on the winner's log folder whose first commit is not written
        # yet. The winner's table has the same layout: wait for its commit, publish into it.
        deadline = time.monotonic() + _TABLE_CREATION_WAIT_S
        while not tables.table_exists(job.output.table):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_TABLE_CREATION_WAIT_S = 60.0


class _BackgroundSession:
    """Builds the Spark session in a thread, then warms the Python workers (and the output
    table's Delta snapshot when delta-spark will publish): the JVM launch and those first-use
    costs (seconds) overlap the driver's model resolution, download and load. Started only
    after the partition checks passed, so a missing partition never starts a JVM."""

    def __init__(self, platform: PlatformConfig, job: ScoringJob) -> None:
        self._session: SparkSession | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._start, args=(platform, job), name="lakescore-spark-start", daemon=True
        )
        self._thread.start()

    def _start(self, platform: PlatformConfig, job: ScoringJob) -> None:
        from lakescore.spark import get_spark_session

        try:
            self._session = get_spark_session(
                platform, job.spark_profile, app_name=f"lakescore-{job.name}"
            )
        except BaseException as exc:  # handed to the caller by session()
            self._error = exc
            return
        # Best effort: a real problem is reported by the step that meets it.
        with contextlib.suppress(Exception):
            warm_python_workers(self._session)
        with contextlib.suppress(Exception):
            if tables.table_exists(job.output.table) and not tables.commits_with_delta_rs(
                job.output.table
            ):  # only delta-spark's publish path reads the table's snapshot in the JVM
                tables.warm_delta_snapshots(self._session, [job.output.table])

    def settle(self) -> None:
        self._thread.join()

    def session(self) -> SparkSession:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._session is not None
        return self._session


_ESTIMATOR_BROADCASTS: dict[tuple[str, str], Any] = {}


def _ship_model(
    spark: SparkSession, model_dir: Path, model: ResolvedModel, scorer: ProbabilityScorer
) -> tuple[str | None, Any]:
    """(shipped archive name, estimator broadcast): how the Python workers get the model.

    A scikit-learn model goes as a Spark broadcast of the estimator the driver has loaded
    (and checked): the workers unpickle it with scikit-learn alone, without importing MLflow
    (seconds per worker), in local mode and on a cluster alike; one broadcast per model
    version and Spark application. Other models go to executors on other hosts as a zip
    through ``SparkContext.addArchive`` (Spark unpacks it; ``SparkFiles.get(name)`` is the
    folder); local mode reads the driver's copy directly."""
    sc = spark.sparkContext
    if scorer.sklearn_estimator is not None:
        key = (sc.applicationId, str(model_dir))
        if key not in _ESTIMATOR_BROADCASTS:
            _ESTIMATOR_BROADCASTS[key] = sc.broadcast(scorer.sklearn_estimator)
        return None, _ESTIMATOR_BROADCASTS[key]
    return _ship_model_archive(spark, model_dir, model), None


def _ship_model_archive(spark: SparkSession, model_dir: Path, model: ResolvedModel) -> str | None:
    """``addFile(dir, recursive=True)`` is refused for local folders on a cluster: a zip."""
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return None
    archive = model_dir.parent / f"lakescore-model-{model.name}-v{model.version}.zip"
    if not archive.exists():
        partial = shutil.make_archive(
            str(archive.with_suffix("")) + ".partial", "zip", root_dir=model_dir
        )
        os.replace(partial, archive)
    try:
        sc.addArchive(str(archive))
    except Exception as exc:  # the same archive added earlier in this session
        if "already" not in str(exc).lower():
            raise
    return archive.name


def _direct_output_folder(
    spark: SparkSession,
    job: ScoringJob,
    day: date,
    run_id: str,
    key_fields: list[Any],
    challengers: list[shadow_scoring.Challenger],
    plan: PartitionRead | None,
) -> str | None:
    """The run's folder in the prediction table when the scoring pass writes the files to
    publish there directly, else None (staging): the table must exist and take delta-rs
    commits and, with challengers, the tasks must write the files themselves (``plan``) into
    a shadow table that does too. A retry of a run whose earlier attempt committed uses
    staging, whose publish then finds that commit and does nothing."""
    part_col = job.features.partition_column
    if not tables.commits_with_delta_rs(job.output.table):
        return None
    tables_written = [job.output.table]
    if any(c.active and c.model is not None for c in challengers):
        if plan is None:
            return None
        shadow_scoring.ensure_shadow_table(spark, job, key_fields)
        if not tables.commits_with_delta_rs(job.shadow_table):
            return None
        tables_written.append(job.shadow_table)
    for uri in tables_written:
        # files an earlier attempt of this run left uncommitted go; committed ones stay
        tables.remove_uncommitted_run_folder(uri, part_col, day, run_id)
        if os.path.exists(tables.run_folder(uri, part_col, day, run_id)):
            return None
    return tables.run_folder(job.output.table, part_col, day, run_id)


def _file_plan(
    spark: SparkSession,
    job: ScoringJob,
    day: date,
    info: tables.PartitionInfo,
    slots: list[ModelSlot],
    keys: list[str],
) -> PartitionRead | None:
    """The read plan of :mod:`lakescore.file_scoring`, or None when it does not apply (not
    local mode, a remote table, deletion vectors / column mapping, an empty partition)."""
    uri = job.features.table
    if not spark.sparkContext.master.startswith("local") or "://" in uri.removeprefix("file://"):
        return None
    plan = plan_partition_read(
        uri,
        job.features.partition_column,
        day,
        info.version,
        keys,
        list(dict.fromkeys(c for slot in slots for c in slot.feature_columns)),
        min_tasks=2 * spark.sparkContext.defaultParallelism,
    )
    return plan if plan is not None and plan.units else None


def _split_for_parallelism(spark: SparkSession, partition_bytes: int) -> None:
    """Let a partition stored in few large files still spread over every core."""
    target_tasks = max(2, 2 * spark.sparkContext.defaultParallelism)
    max_bytes = max(1 << 20, min(128 << 20, partition_bytes // target_tasks + 1))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(max_bytes))


@contextmanager
def _watch_tasks(spark: SparkSession, group: str, progress: ProgressReporter) -> Iterator[None]:
    """Poll Spark's status tracker while a job runs and report task counts."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            done = total = 0
            for job_id in tracker.getJobIdsForGroup(group):
                job_info = tracker.getJobInfo(job_id)
                for stage_id in job_info.stageIds if job_info else []:
                    stage = tracker.getStageInfo(stage_id)
                    if stage:
                        done += stage.numCompletedTasks
                        total += stage.numTasks
            progress.tasks(done, total)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)


def _task_metrics(spark: SparkSession, group: str) -> tuple[float | None, int | None]:
    """Executor-seconds and failed tasks of the run's Spark jobs, from Spark's status store."""
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    try:
        store = sc._jsc.sc().statusStore()  # type: ignore[attr-defined]
        run_ms = 0
        failed = 0
        for job_id in tracker.getJobIdsForGroup(group):
            job_info = tracker.getJobInfo(job_id)
            for stage_id in job_info.stageIds if job_info else []:
                attempts = store.stageData(
                    stage_id,
                    False,
                    getattr(store, "stageData$default$3")(),
                    False,
                    getattr(store, "stageData$default$5")(),
                )
                for i in range(attempts.size()):
                    data = attempts.apply(i)
                    run_ms += data.executorRunTime()
                    failed += data.numFailedTasks()
        return run_ms / 1000.0, failed
    except Exception:
        return None, None
