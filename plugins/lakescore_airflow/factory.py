"""The DAG factory: one scoring DAG (``score_<job>``) per ``conf/jobs/<job>.yaml``.

Everything that shapes a DAG comes from the job config (schedule, catchup, owner, tags,
retries, timeouts, deadline, docs); run-time values (the partition, a pinned model version)
arrive through params/conf and XCom. Parsing imports pydantic, PyYAML and Airflow only: no
pyspark, mlflow, great_expectations or deltalake at module level.

A broken config raises a :class:`~lakescore.errors.ConfigError` naming the file and key,
which Airflow shows as the DAG file's import error. ``lakescore jobs`` checks every config
the same way (exit code 2): run it in CI before deploying a new YAML file.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime, time
from typing import Any

from airflow.sdk import DAG, Asset, AsyncCallback, DeadlineAlert, DeadlineReference, Param

from lakescore.orchestration import (
    PlatformConfig,
    ScoringJob,
    list_job_names,
    load_job,
    load_platform,
)
from lakescore_airflow import dag_id_for
from lakescore_airflow.callbacks import record_task_failure
from lakescore_airflow.operators import (
    FeaturePartitionSensor,
    PlanBackfillOperator,
    RecordLineageOperator,
    ResolveModelOperator,
    ResolvePartitionOperator,
    ScorePartitionOperator,
    ScoreRangeOperator,
)

DS_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def prediction_asset(job: ScoringJob) -> Asset:
    """The Asset downstream DAGs schedule on to react to fresh scores."""
    return Asset(name=f"lakescore.scores.{job.name}", uri=_asset_uri(job.output.table))


def feature_asset(job: ScoringJob) -> Asset:
    return Asset(name=f"lakescore.features.{job.name}", uri=_asset_uri(job.features.table))


def _asset_uri(table: str) -> str:
    return table if "://" in table else f"file://{table}"


def _doc_md(job: ScoringJob, platform: PlatformConfig) -> str:
    model = job.model.reference
    return f"""\
### Scoring job `{job.name}`

{job.description or ""}

| | |
|---|---|
| scores | `{job.features.table}` partition `{job.features.partition_column}` |
| with model | `{model}` (resolved to one pinned version per run) |
| into | `{job.output.table}` (one atomic Delta commit per partition) |
| lineage | `{platform.lineage_table}` |
| schedule | `{job.schedule.cron}`, catchup {job.schedule.catchup}, deadline {job.schedule.deadline} |
| config | `{job.source_file}` |

**Backfill** one day: `airflow dags trigger score_{job.name} --conf '{{"ds": "2026-11-01"}}'`
(optionally `"model_version": 3`), a range:
`airflow backfill create --dag-id score_{job.name} --from-date 2026-11-01 --to-date 2026-11-07`.
Reruns replace the partition; they never duplicate rows.

{_shadow_doc(job)}**Report** (runs, score histogram vs training baseline, PSI over time, validation): the
"Scoring reports" entry of this Airflow's menu, `/lakescore/reports/{job.name}`, or
`lakescore report --job {job.name}`.

**Query** the scores: `lakescore sql "select * from scores_{job.name} where ds = DATE '2026-11-01'"`
"""


def _shadow_doc(job: ScoringJob) -> str:
    if not job.model.challengers or not job.shadow.enabled:
        return ""
    refs = ", ".join(f"`{c.model_ref(job.model).reference}`" for c in job.model.challengers)
    return (
        f"**Shadow scoring**: challengers {refs} score the same partition in the same pass into "
        f"`{job.shadow_table}`; the comparison with the champion is in the report. Turn them "
        f"off for one run with `--conf '{{\"shadow\": false}}'`; promote with "
        f"`lakescore promote --job {job.name} --version N`.\n\n"
    )


def _default_args(job: ScoringJob) -> dict[str, Any]:
    """Owner and retry policy of every task of the job's DAGs (from ``airflow:``)."""
    settings = job.airflow
    return {
        "owner": job.owner,
        "retries": settings.retries,
        "retry_delay": settings.retry_delay,
        "retry_exponential_backoff": settings.retry_exponential_backoff,
        "max_retry_delay": settings.max_retry_delay,
    }


def build_dag(job: ScoringJob, platform: PlatformConfig, conf_dir: str | None = None) -> DAG:
    """The scoring DAG of one job: resolve_partition >> wait_for_partition >> resolve_model
    >> validate_partition (when validation is enabled) >> score_and_publish >> record_lineage."""
    settings = job.airflow
    on_failure = functools.partial(record_task_failure, job_name=job.name, conf_dir=conf_dir)
    deadline = _deadline(job, conf_dir)
    params = _scoring_params(job)
    schedule: Any = (
        [feature_asset(job)] if job.schedule.cron == "feature_asset" else job.schedule.cron
    )
    with DAG(
        dag_id=dag_id_for(job.name),
        description=job.description or f"score {job.features.table} with {job.model.reference}",
        doc_md=_doc_md(job, platform),
        schedule=schedule,
        start_date=datetime.combine(job.schedule.start_date, time(), tzinfo=UTC),
        catchup=job.schedule.catchup,
        max_active_runs=settings.max_active_runs,
        tags=[*platform.airflow.dag_tags, *job.tags],
        deadline=deadline,
        params=params,
        default_args=_default_args(job),
    ) as dag:
        ds = "{{ ti.xcom_pull(task_ids='resolve_partition') }}"
        common = {"job_name": job.name, "conf_dir": conf_dir}
        resolve_partition = ResolvePartitionOperator(
            task_id="resolve_partition", retries=0, on_failure_callback=on_failure, **common
        )
        wait = FeaturePartitionSensor(
            task_id="wait_for_partition",
            ds=ds,
            timeout=settings.wait_timeout.total_seconds(),
            poke_interval=settings.wait_poke_interval.total_seconds(),
            retries=0,
            on_failure_callback=on_failure,
            **common,
        )
        resolve_model = ResolveModelOperator(
            task_id="resolve_model",
            ds=ds,
            model_version="{{ params.model_version if params.model_version else '' }}",
            on_failure_callback=on_failure,
            **common,
        )
        spark_task = {
            "ds": ds,
            "model_version": "{{ ti.xcom_pull(task_ids='resolve_model') }}",
            "profile": job.spark_profile or platform.spark.default_profile,
            "conn_prefix": platform.airflow.spark_conn_prefix,
            "pool": platform.airflow.spark_pool,
            "execution_timeout": settings.score_timeout,
            **common,
        }
        chain = [resolve_partition, wait, resolve_model]
        if job.validation.enabled:
            chain.append(
                ScorePartitionOperator(task_id="validate_partition", step="validate", **spark_task)
            )
        score = ScorePartitionOperator(
            task_id="score_and_publish",
            outlets=[prediction_asset(job)],
            shadow="{{ 'off' if params.shadow is false else 'on' }}"
            if "shadow" in params
            else None,
            input_version=(
                "{{ ti.xcom_pull(task_ids='validate_partition') }}"
                if job.validation.enabled
                else None
            ),
            **spark_task,
        )
        record = RecordLineageOperator(task_id="record_lineage", ds=ds, retries=1, **common)
        for upstream, downstream in zip(chain, [*chain[1:], score], strict=True):
            upstream >> downstream
        score >> record
    return dag


def _deadline(job: ScoringJob, conf_dir: str | None) -> DeadlineAlert | None:
    """``schedule.deadline`` as an Airflow 3 deadline alert (its callback records the miss)."""
    deadline = None
    # `airflow dags test` crashes after a successful run of any DAG with a deadline (Airflow
    # 3.3.2, apache/airflow#73428); the demo and `dags test` runs set this to leave it out.
    if job.schedule.deadline is not None and os.environ.get("LAKESCORE_DEADLINES") != "off":
        deadline = DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=job.schedule.deadline,
            callback=AsyncCallback(
                "lakescore_airflow.callbacks.deadline_missed",
                kwargs={
                    "job": job.name,
                    "deadline": str(job.schedule.deadline),
                    "conf_dir": conf_dir,
                },
            ),
        )
    return deadline


def _scoring_params(job: ScoringJob) -> dict[str, Param]:
    """The scoring DAG's run params: ``ds``, ``model_version`` and, with challengers, ``shadow``."""
    params = {
        "ds": Param(
            None,
            type=["null", "string"],
            pattern=DS_PATTERN,
            description="Partition to score (YYYY-MM-DD). Default: the run's logical date.",
        ),
        "model_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Pin a model version (wins over the configured alias).",
        ),
    }
    if job.model.challengers and job.shadow.enabled:
        params["shadow"] = Param(
            True,
            type="boolean",
            description="Score the challengers in shadow (into the shadow table) in this run.",
        )
    return params


def build_backfill_dag(
    job: ScoringJob, platform: PlatformConfig, conf_dir: str | None = None
) -> DAG:
    """``backfill_<job>``: a date range in chunks, one Spark application per chunk.

    plan_backfill (conf ``from``, ``to``, ``chunk_days``) >> resolve_model (one pinned version
    for the whole backfill) >> score_range, mapped over the chunks; each chunk scores and
    validates its days in one session (:mod:`lakescore.run.range`), so the JVM start, imports
    and model load are paid once per chunk instead of once per day. Chunks run in parallel up
    to the Spark pool's slots. Triggered by hand, never scheduled:
    ``airflow dags trigger backfill_<job> -c '{"from": "2026-11-01", "to": "2026-11-30"}'``.
    """
    settings = job.airflow
    on_failure = functools.partial(record_task_failure, job_name=job.name, conf_dir=conf_dir)
    params = {
        "from": Param(None, type=["null", "string"], pattern=DS_PATTERN, description="First day."),
        "to": Param(None, type=["null", "string"], pattern=DS_PATTERN, description="Last day."),
        "chunk_days": Param(
            7, type="integer", minimum=1, description="Days per Spark application (one task)."
        ),
        "model_version": Param(
            None, type=["null", "integer"], minimum=1, description="Pin a model version."
        ),
    }
    with DAG(
        dag_id=f"backfill_{job.name}",
        description=f"backfill {job.output.table} over a date range (chunks of days)",
        doc_md=_doc_md(job, platform),
        schedule=None,
        start_date=datetime.combine(job.schedule.start_date, time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=[*platform.airflow.dag_tags, *job.tags, "backfill"],
        params=params,
        default_args=_default_args(job),
    ) as dag:
        common = {"job_name": job.name, "conf_dir": conf_dir}
        plan = PlanBackfillOperator(
            task_id="plan_backfill", retries=0, on_failure_callback=on_failure, **common
        )
        resolve_model = ResolveModelOperator(
            task_id="resolve_model",
            ds="{{ dag_run.conf.get('from') or params['from'] }}",
            model_version="{{ params.model_version if params.model_version else '' }}",
            on_failure_callback=on_failure,
            **common,
        )
        score = ScoreRangeOperator.partial(
            task_id="score_range",
            model_version="{{ ti.xcom_pull(task_ids='resolve_model') }}",
            profile=job.spark_profile or platform.spark.default_profile,
            conn_prefix=platform.airflow.spark_conn_prefix,
            pool=platform.airflow.spark_pool,
            execution_timeout=settings.score_timeout,
            outlets=[prediction_asset(job)],
            **common,
        ).expand(chunk=plan.output)
        plan >> resolve_model >> score
    return dag


def build_scoring_dags(conf_dir: str | None = None) -> dict[str, DAG]:
    """Every job's scoring and backfill DAGs, keyed by dag id. Raises on the first broken
    config (file + key)."""
    platform = load_platform(conf_dir)
    dags = {}
    for name in list_job_names(platform.conf_dir):
        job = load_job(name, platform=platform)
        for dag in (
            build_dag(job, platform, conf_dir),
            build_backfill_dag(job, platform, conf_dir),
        ):
            dags[dag.dag_id] = dag
    return dags
