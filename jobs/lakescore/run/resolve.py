"""Stages ``resolve_model`` and ``load_model``: pin the models' versions, check their
signatures against the feature table, download and load them on the driver.

Both run while the JVM starts in the background; a model that fails here fails the run
before any Spark work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from lakescore.errors import BadInputError
from lakescore.lakehouse import layout, tables
from lakescore.ml import shadow as shadow_scoring
from lakescore.ml.models import (
    ModelScorer,
    ResolvedModel,
    check_model_loadable,
    check_signature,
    download_model,
    resolve_model_version,
)
from lakescore.run.check import CheckedPartition
from lakescore.run.context import RunContext


@dataclass
class RunModels:
    """The champion (pinned version, its feature columns, its local copy and loaded scorer)
    and the challengers of this run."""

    model: ResolvedModel
    features: list[str]
    challengers: list[shadow_scoring.Challenger] = field(default_factory=list)
    model_dir: Path | None = None
    scorer: ModelScorer | None = None
    # The drift histogram's range (see histogram_range); None until the model is loaded.
    histogram: tuple[float, float] | None = None

    @property
    def active_challengers(self) -> list[shadow_scoring.Challenger]:
        return [c for c in self.challengers if c.active and c.model is not None]

    @property
    def classes(self) -> list[str]:
        """A multiclass champion's classes (its drift is over their shares), else []."""
        if self.scorer is None or self.model.task != "multiclass":
            return []
        return self.scorer.class_names


def histogram_range(job_bounds: tuple[float, float], model: ResolvedModel) -> tuple[float, float]:
    """The drift histogram's range: the audit bounds (0-1 for a classifier), except for a
    regression model with a training baseline (``lakescore.baseline`` tag or
    :data:`~lakescore.ml.models.BASELINE_ARTIFACT`): the baseline's range, so the partition
    and the baseline are binned alike."""
    if model.task != "regression":
        return job_bounds
    from lakescore.ml.models import BASELINE_ARTIFACT
    from lakescore.quality.monitoring import load_baseline

    baseline = load_baseline(model.run_id, model.tags.get("lakescore.baseline", BASELINE_ARTIFACT))
    edges = (baseline or {}).get("bin_edges") or []
    if len(edges) >= 2 and float(edges[0]) < float(edges[-1]):
        return float(edges[0]), float(edges[-1])
    return job_bounds


def resolve_models(ctx: RunContext, partition: CheckedPartition) -> RunModels:
    """Pins the champion's version (and the challengers'), checks the signatures against the
    feature table and records the champion in lineage."""
    job, record, progress = ctx.job, ctx.record, ctx.progress
    with ctx.stages("resolve_model", job.model.reference):
        model = resolve_model_version(
            ctx.platform, job.model, ctx.request.model_version, job=job.name
        )
        record.model_name = model.name
        record.model_version = model.version
        record.model_alias = model.alias
        record.model_run_id = model.run_id
        record.model_source = model.source
        explicit = job.features.columns if isinstance(job.features.columns, list) else None
        features = check_signature(
            model, partition.feature_schema, explicit, job=job.name, table=job.features.table
        )
        progress.stage("resolve_model", f"{model.name} version {model.version}")
        challengers: list[shadow_scoring.Challenger] = []
        if ctx.request.shadow and job.shadow.enabled and not ctx.request.validate_only:
            challengers = shadow_scoring.resolve_challengers(
                ctx.platform, job, model, partition.feature_schema, features
            )
            for c in challengers:
                version = f" version {c.model.version}" if c.model else ""
                progress.stage("resolve_model", f"challenger {c.reference}{version}: {c.status}")
    return RunModels(model, features, challengers)


def load_models(ctx: RunContext, models: RunModels) -> None:
    """Downloads the champion (and challengers) and loads them on the driver, which proves
    they load here before any Spark work."""
    with ctx.stages("load_model"):
        models.model_dir = download_model(ctx.platform, models.model, job=ctx.job.name)
        models.scorer = check_model_loadable(models.model_dir, models.model, job=ctx.job.name)
        # What the model was found to be (model.task auto), for the slots, layout and lineage.
        models.model = replace(models.model, task=models.scorer.task)
        audit = ctx.job.audit
        if models.scorer.task == "regression" and audit.score_min is None:
            raise BadInputError(
                f"model {models.model.name} version {models.model.version} is a regression "
                "model: set audit.score_min and audit.score_max (the range its predictions "
                "must fall in, also the drift histogram's range)",
                job=ctx.job.name,
                key="audit.score_min",
            )
        ctx.record.details["model_task"] = models.scorer.task
        ctx.record.details["model_flavor"] = models.model.flavor
        if models.scorer.warnings:  # model.requirements: warn (kept in the lineage row too)
            ctx.record.details["warnings"] = list(models.scorer.warnings)
        for warning in models.scorer.warnings:
            ctx.progress.stage("load_model", f"warning: {warning}")
        models.histogram = histogram_range(audit.bounds(models.scorer.task), models.model)
        ctx.progress.stage("load_model", f"{models.model.flavor} model, task {models.scorer.task}")
        refuse_missing_integers(ctx, models.model, models.scorer)
        check_output_table(ctx, models.model)
        shadow_scoring.load_challengers(
            ctx.platform, ctx.job, models.challengers, models.model.task
        )
        shadow_scoring.check_shadow_table(ctx.job, models.active_challengers, models.model.task)


def refuse_missing_integers(ctx: RunContext, model: ResolvedModel, scorer: ModelScorer) -> None:
    """A pyfunc model's integer inputs take no missing values (MLflow's schema enforcement
    refuses them in every Python worker): refuse a partition whose Delta log counts nulls in
    such a column before any Spark work, naming it and how to log the model instead."""
    from lakescore.ml.models import type_family

    if scorer.native_estimator is not None:  # native models get NaN in a float column
        return
    integers = {n: t for n, t in model.inputs if type_family(t) in ("long", "integer")}
    if not integers or ctx.record.input_version is None:
        return
    job = ctx.job
    counts = tables.partition_null_counts(
        job.features.table,
        job.features.partition_column,
        ctx.day,
        ctx.record.input_version,
        list(integers),
    )
    for column, nulls in counts.items():
        if nulls:
            raise BadInputError(
                f"{nulls} rows of partition {job.features.partition_column}={ctx.day} have no "
                f"value here, and model {model.name} version {model.version} "
                f"({model.flavor}) declares it {integers[column]}: MLflow refuses missing "
                "values in an integer input. Log the model with this column as double "
                "(infer its signature from float64 data with missing values)",
                job=job.name,
                file=job.features.table,
                column=column,
                key="model",
            )


def check_output_table(ctx: RunContext, model: ResolvedModel) -> None:
    """Refuse, before any Spark work, a run whose model would write another layout (or
    another kind of score) than the existing prediction table holds: e.g. the job's model
    became multiclass (``label`` and ``probabilities`` appear) or regression turned binary
    (``score`` would change meaning mid-table). Names the table, what differs and what to do."""
    job = ctx.job
    uri = job.output.table
    if not tables.table_exists(uri):
        return
    keys, part_col = job.features.entity_keys, job.features.partition_column
    found = list(tables.table_columns(uri))
    found_task = recorded_task(ctx, uri, found)
    difference = layout.layout_difference(
        found, found_task, layout.prediction_columns(keys, part_col, model.task), model.task
    )
    if difference is None:
        return
    held = f"{found_task} predictions" if found_task else "predictions in another layout"
    new_name = f"{_relative_name(ctx, uri)}_{model.task}"
    raise BadInputError(
        f"the prediction table holds {held}, but model {model.name} version {model.version} is "
        f"{model.task}: {difference}. Score into a new table (set output.table, e.g. "
        f"{new_name}), or move this table aside (its history stays readable there) and "
        f"re-score the partitions you need (lakescore score --job {job.name} --from D1 --to D2); "
        "nothing was published",
        job=job.name,
        file=uri,
        key="output.table",
    )


def recorded_task(ctx: RunContext, uri: str, columns: list[str]) -> str | None:
    """The task whose predictions the table holds: its ``lakescore.task`` property (set when
    lakescore creates a table), else what its columns tell, else what the job's last
    successful run into this table recorded in lineage (tables made before the property)."""
    task = tables.table_properties(uri).get(layout.TASK_PROPERTY) or layout.task_from_columns(
        columns
    )
    if task:
        return task
    runs = tables.select_rows(
        ctx.platform.lineage_table,
        sort_by="started_at",
        columns=["output_table", "output_version", "details"],
        job=ctx.job.name,
        status="succeeded",
    )
    for run in reversed(runs):
        if run.get("output_table") == uri and run.get("output_version") is not None:
            try:
                found = json.loads(run.get("details") or "{}").get("model_task")
            except ValueError:
                continue
            if found:
                return str(found)
    return None


def _relative_name(ctx: RunContext, uri: str) -> str:
    """``uri`` as a job file names it: relative to the warehouse when inside it."""
    root = ctx.platform.warehouse.rstrip("/") + "/"
    return uri[len(root) :] if uri.startswith(root) else uri
