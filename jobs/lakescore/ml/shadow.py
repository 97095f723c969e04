"""Champion/challenger (shadow) scoring: challengers score the same partition in the same pass
as the champion; their scores go to the job's shadow table, never to the prediction table.

A run with challengers (``model.challengers`` in the job file, ``shadow.enabled``):

* **resolve** each challenger to one pinned version. One that does not resolve (unknown alias,
  registry down) or cannot be downloaded is recorded as failed and left out; one whose
  signature does not match the job's features is a config error naming it (the run stops
  before Spark starts, like a champion mismatch).
* **score**: every model scores each Arrow batch in the same Python worker
  (:func:`lakescore.ml.scoring.score_models`); the staged output holds one score column per model.
* **compare** (one aggregation over the staged output): score correlation, mean difference,
  PSI of the challenger's histogram against the champion's, and the share of entities whose
  decision flips at ``shadow.decision_threshold``. One metrics row per challenger
  (``role = "challenger"``).
* **publish** after the champion's publish: one ``replaceWhere`` commit of partition ds in the
  shadow table (prediction layout + ``role`` + ``model_reference``) with its own ``txnAppId``.
  A challenger with missing, non-finite or out-of-range scores is left out; a failing shadow
  publish is recorded and never undoes or blocks the champion's publish.

``lakescore promote`` (:func:`promote`) moves an alias to a version after printing these
comparisons, refusing a version whose signature does not match the job's features.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore.errors import BadInputError, LakescoreError
from lakescore.lakehouse import layout, tables
from lakescore.ml.models import (
    ResolvedModel,
    check_signature,
    download_model,
    resolve_model_version,
)
from lakescore.quality.monitoring import bin_edges, psi

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakescore.config import PlatformConfig, ScoringJob
    from lakescore.ml.scoring import ComparisonSummary

CHALLENGER = "challenger"


def shadow_app_id(job: str, ds: date) -> str:
    """Idempotency key of a (job, partition) in the shadow table."""
    return f"{tables.publish_app_id(job, ds)}.shadow"


@dataclass
class Comparison:
    """Challenger vs champion on the same rows of one partition."""

    rows: int
    scored_rows: int
    bad_scores: int  # non-finite or outside the audit bounds
    correlation: float | None
    mean_difference: float | None  # challenger - champion
    psi_champion: float | None
    flip_share: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    bin_edges: list[float]
    bin_counts: list[int]


@dataclass
class Challenger:
    """One configured challenger and what happened to it in this run."""

    index: int
    reference: str  # as configured: name@alias or name/version
    model: ResolvedModel | None = None
    feature_columns: list[str] = field(default_factory=list)
    model_dir: Path | None = None
    scorer: Any = None  # the driver's loaded model (ModelScorer)
    shipped_name: str | None = None
    estimator: Any = None  # the broadcast of a native model (see ModelSlot)
    status: str = "ok"  # ok | failed | skipped
    error: str | None = None
    comparison: Comparison | None = None

    @property
    def score_column(self) -> str:
        return f"_challenger_{self.index}_score"

    @property
    def class_columns(self) -> tuple[str, str]:
        """A multiclass challenger's label and probabilities columns in the scored batches."""
        return f"_challenger_{self.index}_label", f"_challenger_{self.index}_probabilities"

    @property
    def task(self) -> str:
        return self.model.task if self.model is not None else "binary"

    @property
    def active(self) -> bool:
        return self.status == "ok"

    def fail(self, error: str) -> None:
        self.status = "failed"
        self.error = error[:2000]

    def summary(self) -> dict[str, Any]:
        """What lineage ``details.shadow.challengers`` holds for this challenger."""
        out: dict[str, Any] = {
            "reference": self.reference,
            "model_name": self.model.name if self.model else None,
            "model_version": self.model.version if self.model else None,
            "status": self.status,
            "error": self.error,
        }
        if self.comparison is not None:
            c = self.comparison
            out.update(
                correlation=c.correlation,
                mean_difference=c.mean_difference,
                psi_champion=c.psi_champion,
                flip_share=c.flip_share,
            )
        return out


# --------------------------------------------------------------------------- resolve + load


def resolve_challengers(
    platform: PlatformConfig,
    job: ScoringJob,
    champion: ResolvedModel,
    feature_schema: dict[str, str],
    features: list[str],
) -> list[Challenger]:
    """Pin every configured challenger. Unresolvable ones are marked failed (the champion still
    runs); a signature that does not match the job's ``features`` raises :class:`BadInputError`
    naming the challenger."""
    out = []
    for index, configured in enumerate(job.model.challengers):
        ref = configured.model_ref(job.model)
        challenger = Challenger(index=index, reference=ref.reference)
        out.append(challenger)
        try:
            model = resolve_model_version(platform, ref, job=job.name)
        except LakescoreError as exc:
            challenger.fail(f"not resolved: {exc.message}")
            continue
        challenger.model = model
        if (model.name, model.version) == (champion.name, champion.version):
            challenger.status = "skipped"
            challenger.error = f"{ref.reference} is the champion's version {model.version}"
            continue
        try:
            challenger.feature_columns = check_signature(
                model, feature_schema, features, job=job.name, table=job.features.table
            )
        except BadInputError as exc:
            raise BadInputError(
                f"challenger {ref.reference} (version {model.version}) does not match the job's "
                f"features: {exc.message}",
                job=job.name,
                key=f"model.challengers[{index}]",
                column=exc.column,
            ) from None
    return out


def load_challengers(
    platform: PlatformConfig,
    job: ScoringJob,
    challengers: list[Challenger],
    task: str | None = None,
) -> None:
    """Download and load each active challenger on the driver; a failure marks it failed
    (the champion still runs), and so does a task other than the champion's ``task``."""
    import dataclasses

    from lakescore.ml.models import check_model_loadable  # the champion's load path too

    for challenger in challengers:
        if not challenger.active or challenger.model is None:
            continue
        try:
            challenger.model_dir = download_model(platform, challenger.model, job=job.name)
            challenger.scorer = check_model_loadable(
                challenger.model_dir, challenger.model, job=job.name
            )
            challenger.model = dataclasses.replace(challenger.model, task=challenger.scorer.task)
            if task is not None and challenger.scorer.task != task:
                challenger.fail(
                    f"a {challenger.scorer.task} model cannot shadow the champion's {task} model"
                )
        except Exception as exc:
            challenger.fail(f"not loaded: {exc}")


def check_shadow_table(job: ScoringJob, active: list[Challenger], task: str) -> None:
    """Before any Spark work: if the job's shadow table exists in another layout than the
    challengers of ``task`` write (or holds another kind of score), mark them failed with
    what differs and what to do; the champion still runs."""
    uri = job.shadow_table
    if not active or not tables.table_exists(uri):
        return
    found = list(tables.table_columns(uri))
    found_task = tables.table_properties(uri).get(layout.TASK_PROPERTY) or layout.task_from_columns(
        found
    )
    keys, part = job.features.entity_keys, job.features.partition_column
    difference = layout.layout_difference(
        found, found_task, layout.shadow_columns(keys, part, task), task
    )
    if difference is None:
        return
    for challenger in active:
        challenger.fail(
            f"the shadow table {uri} does not take {task} scores: {difference}. Set "
            "shadow.table to a new table, or move this one aside"
        )


def ship_challengers(challengers: list[Challenger], ship: Any) -> None:
    """Make each loaded challenger available to the executors; a failure marks it failed.
    ``ship(model_dir, model, scorer)`` returns (shipped archive name, estimator broadcast)."""
    for challenger in challengers:
        if not challenger.active or challenger.model is None or challenger.model_dir is None:
            continue
        try:
            challenger.shipped_name, challenger.estimator = ship(
                challenger.model_dir, challenger.model, challenger.scorer
            )
        except Exception as exc:
            challenger.fail(f"not shipped to the executors: {exc}")


def slots(challengers: list[Challenger]) -> list[Any]:
    """The :class:`~lakescore.ml.scoring.ModelSlot` of every active challenger."""
    from lakescore.ml.scoring import ModelSlot

    return [
        ModelSlot.of(
            c.model,
            str(c.model_dir),
            c.feature_columns,
            score_column=c.score_column,
            shipped_name=c.shipped_name,
            required=False,
            estimator=c.estimator,
            class_columns=c.class_columns,
        )
        for c in challengers
        if c.active and c.model is not None
    ]


# --------------------------------------------------------------------------- compare


def compare(
    staged: DataFrame,
    challengers: list[Challenger],
    *,
    score_min: float,
    score_max: float,
    bins: int,
    threshold: float,
) -> None:
    """One aggregation over the staged scores fills each active challenger's
    :class:`Comparison` (its histogram's PSI against the champion's scores of the same rows
    on the same bins); a challenger with missing or bad scores is marked failed."""
    from pyspark.sql import functions as F

    active = [c for c in challengers if c.active]
    if not active:
        return
    champion = F.col(layout.SCORE)
    edges = bin_edges(score_min, score_max, bins)
    width = (score_max - score_min) / bins
    aggs = [F.count(F.lit(1)).alias("rows")]
    for c in active:
        i, s = c.index, F.col(c.score_column)
        finite = s.isNotNull() & ~F.isnan(s)
        good = finite & (s >= score_min) & (s <= score_max)
        bucket = F.least(
            F.floor((s - F.lit(score_min)) / F.lit(width)).cast("int"), F.lit(bins - 1)
        )
        champion_bucket = F.greatest(
            F.least(
                F.floor((champion - F.lit(score_min)) / F.lit(width)).cast("int"), F.lit(bins - 1)
            ),
            F.lit(0),
        )
        paired = good & champion.isNotNull() & ~F.isnan(champion)
        flips = F.when(good, ((champion >= threshold) != (s >= threshold)).cast("long"))
        aggs += [
            F.count(s).alias(f"n{i}"),
            F.sum((s.isNotNull() & ~good).cast("long")).alias(f"bad{i}"),
            F.corr(champion, F.when(good, s)).alias(f"corr{i}"),
            F.avg(F.when(good, s - champion)).alias(f"diff{i}"),
            F.avg(flips).alias(f"flip{i}"),
            F.avg(F.when(good, s)).alias(f"mean{i}"),
            F.stddev_pop(F.when(good, s)).alias(f"std{i}"),
            F.min(F.when(good, s)).alias(f"min{i}"),
            F.max(F.when(good, s)).alias(f"max{i}"),
            *[F.sum((good & (bucket == b)).cast("long")).alias(f"b{i}_{b}") for b in range(bins)],
            *[
                F.sum((paired & (champion_bucket == b)).cast("long")).alias(f"c{i}_{b}")
                for b in range(bins)
            ],
        ]
    row = staged.agg(*aggs).first()
    assert row is not None
    rows = int(row["rows"])
    for c in active:
        i = c.index
        counts = [int(row[f"b{i}_{b}"] or 0) for b in range(bins)]
        champion_counts = [int(row[f"c{i}_{b}"] or 0) for b in range(bins)]
        _judge(
            c,
            Comparison(
                rows=rows,
                scored_rows=int(row[f"n{i}"]),
                bad_scores=int(row[f"bad{i}"] or 0),
                correlation=_finite(row[f"corr{i}"]),
                mean_difference=row[f"diff{i}"],
                psi_champion=psi(counts, champion_counts),
                flip_share=row[f"flip{i}"],
                mean=row[f"mean{i}"],
                std=row[f"std{i}"],
                min=row[f"min{i}"],
                max=row[f"max{i}"],
                bin_edges=edges,
                bin_counts=counts,
            ),
        )


def compare_summaries(
    challengers: list[Challenger],
    summaries: dict[int, ComparisonSummary],
) -> None:
    """:func:`compare` from the partial sums the scoring tasks returned (the tasks wrote
    the scores as files; there is no staged output to aggregate): ``summaries`` by
    challenger index."""
    for c in challengers:
        summary = summaries.get(c.index)
        if not c.active or summary is None:
            continue
        _judge(
            c,
            Comparison(
                rows=summary.rows,
                scored_rows=summary.scored,
                bad_scores=summary.bad,
                correlation=_finite(summary.correlation),
                mean_difference=summary.mean_difference,
                psi_champion=psi(summary.bin_counts, summary.champion_bin_counts),
                flip_share=summary.flip_share,
                mean=summary.mean if summary.good else None,
                std=summary.std,
                min=summary.score_min,
                max=summary.score_max,
                bin_edges=bin_edges(summary.low, summary.high, summary.bins),
                bin_counts=list(summary.bin_counts),
            ),
        )


def _judge(challenger: Challenger, comparison: Comparison) -> None:
    """Keep the comparison; fail the challenger if it missed rows or gave bad scores."""
    challenger.comparison = comparison
    missing = comparison.rows - comparison.scored_rows
    if missing:
        challenger.fail(
            f"{missing} of {comparison.rows} rows not scored (model failed in the Spark workers)"
        )
    elif comparison.bad_scores:
        challenger.fail(f"{comparison.bad_scores} scores are NaN or outside the audit bounds")


def _finite(value: float | None) -> float | None:
    import math

    return value if value is not None and math.isfinite(value) else None


def metrics_rows(
    challengers: list[Challenger],
    *,
    run_id: str,
    job: ScoringJob,
    ds: date,
    champion: ResolvedModel,
    computed_at: datetime,
    published: bool,
) -> list[dict[str, Any]]:
    """One metrics row per challenger (``role = "challenger"``), failed ones included."""
    out = []
    warn, fail = job.monitoring.psi_warn, job.monitoring.psi_fail
    for c in challengers:
        if c.status == "skipped":
            continue
        comp = c.comparison
        status = "n/a"
        if comp is not None and comp.psi_champion is not None and c.active:
            status = "ok" if comp.psi_champion <= warn else "warn"
            if fail is not None and comp.psi_champion > fail:
                status = "fail"
        out.append(
            {
                "run_id": run_id,
                "job": job.name,
                "ds": ds,
                "role": CHALLENGER,
                "model_name": c.model.name if c.model else None,
                "model_version": c.model.version if c.model else None,
                "computed_at": computed_at,
                "published": published and c.active,
                "drift_status": status,
                "rows": comp.scored_rows if comp else None,
                "mean": comp.mean if comp else None,
                "std": comp.std if comp else None,
                "min": comp.min if comp else None,
                "max": comp.max if comp else None,
                "bin_edges": comp.bin_edges if comp else None,
                "bin_counts": comp.bin_counts if comp else None,
                "champion_version": champion.version,
                "model_reference": c.reference,
                "challenger_status": c.status,
                "challenger_error": c.error,
                "score_correlation": comp.correlation if comp else None,
                "mean_difference": comp.mean_difference if comp else None,
                "psi_champion": comp.psi_champion if comp else None,
                "decision_threshold": job.shadow.decision_threshold,
                "decision_flip_share": comp.flip_share if comp else None,
            }
        )
    return out


# --------------------------------------------------------------------------- publish


def publish_shadow(
    spark: SparkSession,
    staged: DataFrame,
    challengers: list[Challenger],
    *,
    job: ScoringJob,
    ds: date,
    run_id: str,
    txn_version: int,
    input_version: int,
    key_fields: list[Any],
) -> int | None:
    """Replace partition ``ds`` of the shadow table with the active challengers' scores (one
    commit, own ``txnAppId``). Returns the table version, or None when no challenger is
    active (the shadow partition is then left as it was)."""
    from functools import reduce

    from pyspark.sql import functions as F

    active = [c for c in challengers if c.active and c.model is not None]
    if not active:
        return None
    keys = job.features.entity_keys
    part = job.features.partition_column
    task = active[0].task  # every active challenger's: the champion's (load_challengers)
    frames = [
        staged.select(
            *keys,
            F.col(c.score_column).alias(layout.SCORE),
            *(
                F.col(column).alias(name)
                for column, name in zip(c.class_columns, layout.class_columns(c.task), strict=False)
            ),
            F.lit(c.model.name).alias(layout.MODEL_NAME),
            F.lit(c.model.version).cast("bigint").alias(layout.MODEL_VERSION),
            F.col(layout.RUN_ID),
            F.col(layout.SCORED_AT),
            F.lit(CHALLENGER).alias(layout.ROLE),
            F.lit(c.reference).alias(layout.MODEL_REFERENCE),
            F.col(part),
        )
        for c in active
        if c.model is not None
    ]
    rows = reduce(lambda a, b: a.unionByName(b), frames)
    ensure_shadow_table(spark, job, key_fields, task)
    return tables.replace_partition(
        rows.select(*layout.shadow_columns(keys, part, task)),
        job.shadow_table,
        part,
        ds,
        _shadow_commit(active, job=job, ds=ds, run_id=run_id, input_version=input_version),
        txn_version,
        app_id=shadow_app_id(job.name, ds),
    )


def ensure_shadow_table(
    spark: SparkSession, job: ScoringJob, key_fields: list[Any], task: str = "binary"
) -> None:
    """Create the job's shadow table in the layout of ``task`` (recorded as its
    ``lakescore.task`` property) on its first publish."""
    from pyspark.sql.pandas.types import from_arrow_schema

    part = job.features.partition_column
    if not tables.table_exists(job.shadow_table):
        tables.ensure_table(
            spark,
            job.shadow_table,
            from_arrow_schema(layout.shadow_schema(key_fields, part, task)),
            part,
            f"lakescore challenger (shadow) scores of job {job.name}",
            {layout.TASK_PROPERTY: task},
        )


def _shadow_commit(
    active: list[Challenger], *, job: ScoringJob, ds: date, run_id: str, input_version: int
) -> tables.CommitInfo:
    """The shadow commit's metadata: the first challenger names the model; rows cover all."""
    first = active[0].model
    assert first is not None
    comparison = active[0].comparison
    return tables.CommitInfo(
        run_id=run_id,
        job=job.name,
        ds=ds,
        model_name=first.name,
        model_version=first.version,
        input_table=job.features.table,
        input_version=input_version,
        rows=(comparison.rows if comparison else 0) * len(active),
    )


def shadow_file_output(
    challenger: Challenger,
    *,
    job: ScoringJob,
    ds: date,
    run_id: str,
    scored_at: datetime,
    key_fields: list[Any],
) -> Any:
    """Where the scoring tasks write this challenger's scores: its files in the run's folder
    of the shadow table, in the shadow layout (:class:`lakescore.ml.file_scoring.FileOutput`)."""
    from lakescore.ml.file_scoring import FileOutput

    assert challenger.model is not None
    part = job.features.partition_column
    return FileOutput(
        folder=tables.run_folder(job.shadow_table, part, ds, run_id),
        schema=layout.data_file_schema(
            layout.shadow_schema(key_fields, part, challenger.task), part
        ),
        constants={
            layout.MODEL_NAME: challenger.model.name,
            layout.MODEL_VERSION: int(challenger.model.version),
            layout.RUN_ID: run_id,
            layout.SCORED_AT: scored_at,
            layout.ROLE: CHALLENGER,
            layout.MODEL_REFERENCE: challenger.reference,
        },
        score_column=challenger.score_column,
        label_column=challenger.class_columns[0] if challenger.task == "multiclass" else None,
        probabilities_column=(
            challenger.class_columns[1] if challenger.task == "multiclass" else None
        ),
        low=job.audit.bounds(challenger.model.task)[0],
        high=job.audit.bounds(challenger.model.task)[1],
        bins=job.monitoring.bins,
        compare_to=layout.SCORE,
        threshold=job.shadow.decision_threshold,
    )


def commit_shadow_files(
    challengers: list[Challenger],
    files: dict[int, list[str]],
    *,
    job: ScoringJob,
    ds: date,
    run_id: str,
    txn_version: int,
    input_version: int,
) -> int | None:
    """:func:`publish_shadow` for scores the tasks wrote as files (``files`` by challenger
    index, in the run's folder of the shadow table): a failed challenger's files are removed,
    the active ones' committed as partition ``ds`` (one delta-rs commit, own ``txnAppId``).
    None, with the folder removed, when no challenger is active."""
    import os
    import shutil

    part = job.features.partition_column
    folder = tables.run_folder(job.shadow_table, part, ds, run_id)
    active = [c for c in challengers if c.active and c.model is not None]
    keep = {name for c in active for name in files.get(c.index, [])}
    if not active:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    for name in os.listdir(folder):
        if name not in keep:
            os.remove(os.path.join(folder, name))
    commit = _shadow_commit(active, job=job, ds=ds, run_id=run_id, input_version=input_version)
    return tables.commit_partition_files(
        job.shadow_table,
        part,
        ds,
        folder,
        commit,
        txn_version,
        app_id=shadow_app_id(job.name, ds),
        expected_rows=commit.rows,
    )


# --------------------------------------------------------------------------- read once


def keep_scan_locations(spark: SparkSession) -> None:
    """Let scan nodes' plan descriptions carry whole table paths (Spark cuts metadata strings
    at 100 characters by default), so :func:`source_scan` can tell the tables apart."""
    spark.conf.set("spark.sql.maxMetadataStringLength", "4096")


def source_scan(spark: SparkSession, job_group: str, table_uri: str) -> dict[str, int]:
    """How often the run's Spark jobs scanned ``table_uri``'s data files, from Spark's own SQL
    metrics (the status store): ``scans`` = Parquet scan nodes over the table that read
    files, ``files`` / ``rows`` = files and rows they read. A partition read once, however
    many models score it and however many Great Expectations jobs run on the cached copy,
    shows ``rows`` = the partition's rows. Needs :func:`keep_scan_locations` before the
    scans. Empty dict if Spark's store is not reachable."""
    try:
        sc = spark.sparkContext
        jobs = set(sc.statusTracker().getJobIdsForGroup(job_group))
        store = spark._jsparkSession.sharedState().statusStore()  # type: ignore[attr-defined]
        path = table_uri.removeprefix("file://")
        executions = store.executionsList()
        scans = files = rows = 0
        for i in range(executions.size()):
            execution = executions.apply(i)
            keys = execution.jobs().keys().toList()
            if not {int(keys.apply(j)) for j in range(keys.size())} & jobs:
                continue
            values = store.executionMetrics(execution.executionId())
            nodes = store.planGraph(execution.executionId()).allNodes()
            for n in range(nodes.size()):
                node = nodes.apply(n)
                desc = node.desc()
                if not node.name().startswith("Scan parquet") or "_delta_log" in desc:
                    continue
                if f"[file:{path}]" not in desc and f"[{path}]" not in desc:
                    continue
                metrics = {}
                node_metrics = node.metrics()
                for m in range(node_metrics.size()):
                    metric = node_metrics.apply(m)
                    value = values.get(metric.accumulatorId())
                    if value.isDefined():
                        metrics[metric.name()] = value.get()
                read = _metric_int(metrics.get("number of files read"))
                if read:
                    scans += 1
                    files += read
                    rows += _metric_int(metrics.get("number of output rows"))
        return {"scans": scans, "files": files, "rows": rows}
    except Exception:
        return {}


def _metric_int(text: str | None) -> int:
    if not text:
        return 0
    digits = text.split()[0].replace(",", "")
    return int(digits) if digits.isdigit() else 0


# --------------------------------------------------------------------------- promote


@dataclass
class PromoteResult:
    job: str
    model_name: str
    alias: str
    from_version: int | None
    to_version: int
    comparisons: list[dict[str, Any]]
    lineage_run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "model_name": self.model_name,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "comparisons": self.comparisons,
            "lineage_run_id": self.lineage_run_id,
        }


COMPARISON_FIELDS = (
    "ds",
    "run_id",
    "model_reference",
    "model_version",
    "champion_version",
    "challenger_status",
    "rows",
    "score_correlation",
    "mean_difference",
    "psi_champion",
    "decision_threshold",
    "decision_flip_share",
)


def latest_comparisons(
    platform: PlatformConfig, job: str, model_version: int | None = None, limit: int = 7
) -> list[dict[str, Any]]:
    """The newest challenger comparison rows of ``job`` (one per partition, newest partition
    first), optionally only those of ``model_version``."""
    rows = tables.select_rows(
        platform.metrics_table, sort_by="computed_at", job=job, role=CHALLENGER
    )
    if model_version is not None:
        rows = [r for r in rows if r.get("model_version") == model_version]
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:  # oldest first: later runs of a partition win
        latest[(row["ds"], row.get("model_reference"))] = row
    ordered = sorted(latest.values(), key=lambda r: (r["ds"], r["computed_at"]), reverse=True)
    return [{k: r.get(k) for k in COMPARISON_FIELDS} for r in ordered[:limit]]


def check_promotable(
    platform: PlatformConfig, job: ScoringJob, version: int, alias: str
) -> tuple[ResolvedModel, int | None]:
    """The version to promote (signature checked against the job's features) and the version
    the alias points at now (None if unset). Raises :class:`BadInputError` naming the
    columns when the signatures disagree."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lakescore.config import ModelRef

    ref = ModelRef(name=job.model.name, version=version, positive_class=job.model.positive_class)
    candidate = resolve_model_version(platform, ref, job=job.name)
    try:
        current: int | None = int(
            MlflowClient().get_model_version_by_alias(job.model.name, alias).version
        )
    except MlflowException:
        current = None
    feature_schema = tables.table_columns(job.features.table)
    if isinstance(job.features.columns, list):
        features: list[str] | None = list(job.features.columns)
    elif current is not None:
        current_ref = ModelRef(
            name=job.model.name, version=current, positive_class=job.model.positive_class
        )
        features = resolve_model_version(platform, current_ref, job=job.name).feature_columns
    else:
        features = None
    try:
        check_signature(candidate, feature_schema, features, job=job.name, table=job.features.table)
    except BadInputError as exc:
        raise BadInputError(
            f"refusing to promote {job.model.name} version {version} to @{alias}: its signature "
            f"does not match the job's features: {exc.message}",
            job=job.name,
            key="--version",
            column=exc.column,
        ) from None
    return candidate, current


def promote(
    platform: PlatformConfig,
    job: ScoringJob,
    version: int,
    *,
    alias: str = "champion",
    reason: str | None = None,
    comparisons: list[dict[str, Any]] | None = None,
) -> PromoteResult:
    """Point ``job.model.name@alias`` at ``version`` (after :func:`check_promotable`) and
    append a lineage row (action ``promote``; ``details`` has from/to version and reason)."""
    from mlflow import MlflowClient

    from lakescore.lakehouse.lineage import LineageRecord, append_lineage, utcnow

    candidate, current = check_promotable(platform, job, version, alias)
    if comparisons is None:
        comparisons = latest_comparisons(platform, job.name, version)
    started = utcnow()
    run_id = f"{job.name}-promote-{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    MlflowClient().set_registered_model_alias(job.model.name, alias, str(version))
    record = LineageRecord(
        attempt_id=uuid.uuid4().hex,
        run_id=run_id,
        action="promote",
        job=job.name,
        ds=None,
        status="succeeded",
        started_at=started,
        finished_at=utcnow(),
        model_name=candidate.name,
        model_version=candidate.version,
        model_alias=alias,
        model_run_id=candidate.run_id,
        model_source=candidate.source,
        output_table=job.output.table,
        details={
            "promote": {
                "alias": alias,
                "from_version": current,
                "to_version": version,
                "reason": reason,
                "comparisons": comparisons,
            }
        },
    )
    append_lineage(platform.lineage_table, [record])
    return PromoteResult(job.name, job.model.name, alias, current, version, comparisons, run_id)
