"""The one place that chooses how a run reads its partition and where its scores go.

Two readers:

* ``files``: each Python task reads Parquet files the Delta log lists with pyarrow
  (:mod:`lakescore.ml.file_scoring`), skipping Spark's JVM -> Arrow path (2-5x faster score
  stage in ``bench/scoring.py``). Needs workers that see the driver's files (local mode), a
  local feature table or one on object storage (pyarrow's S3 filesystem), a plan the log
  allows (no deletion vectors or column mapping, a non-empty partition), and no quarantine
  (policy ``quarantine`` scores the rows that pass the rules' Spark predicates, so it scores
  Spark's rows).
* ``spark``: Spark's Delta reader, everywhere else.

Validation reads the partition with Spark, cached (Great Expectations' queries are 2-3x
faster on the cached rows than each re-planning the Delta read: ``bench/validation_cost.py``).
The ``files`` reader still reads the files itself for scoring (the OS page cache serves
them); the ``spark`` reader scores the cached rows.

Two publish paths:

* ``commit``: the scoring pass writes the files to publish straight into the run's folder in
  the prediction table (and the shadow table's); after the audit, delta-rs commits them as
  one overwrite of the partition. Needs a local table whose protocol delta-rs writes (it
  exists: its first publish creates it), no leftover folder of an earlier attempt of this run,
  and, with active challengers, the ``files`` reader and a shadow table that takes delta-rs
  commits too.
* ``staging``: every model's scores go to a private staging folder; the publish rewrites them
  with :func:`lakescore.lakehouse.tables.replace_partition` (delta-spark ``replaceWhere`` for tables
  delta-rs does not commit to).

The writer follows: with ``files`` and ``commit`` the Python tasks write the published files
themselves (``python``); otherwise Spark writes them.

:func:`decide` is the policy as a pure function of :class:`PathFacts`; :func:`choose_reader`
gathers the reader's facts before validation (which caches or not by its decision) and
:func:`choose_score_path` the publish facts after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lakescore import storage
from lakescore.lakehouse import tables
from lakescore.ml import shadow as shadow_scoring
from lakescore.ml.file_scoring import PartitionRead, plan_partition_read
from lakescore.run.check import CheckedPartition
from lakescore.run.context import RunContext
from lakescore.run.resolve import RunModels

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakescore.ml.scoring import ModelSlot


@dataclass(frozen=True)
class PathFacts:
    """What the choice depends on; each is a yes/no read off the run's tables and session."""

    workers_local: bool  # Spark's master is local: tasks see the driver's files
    # the feature table is on a local filesystem, or on object storage pyarrow reads
    features_local: bool
    # how validation meets the partition's rows in this run: "none" (off, only validating,
    # or an earlier attempt's outcome reused), "reads" (Great Expectations reads them:
    # policies fail and warn), "filters" (quarantine: the rows scored are those that pass
    # the rules' Spark predicates)
    validation: Literal["none", "reads", "filters"]
    file_plan_ready: bool  # the log's files can be read by pyarrow (see module docstring)
    output_commits_with_delta_rs: bool
    challengers_active: bool
    shadow_commits_with_delta_rs: bool
    earlier_attempt_committed: bool  # a folder of an earlier attempt of this run is committed
    # the prediction table is on a local filesystem: the Python tasks can write its files
    # (on object storage Spark writes them; lakescore.storage)
    output_local: bool = True


@dataclass(frozen=True)
class ScorePath:
    reader: Literal["files", "spark"]
    publish: Literal["commit", "staging"]
    tasks_write: bool = True  # the Python tasks may write the published files themselves
    # validation persists the partition in Spark: the scoring pass reads those rows again
    cache: bool = False

    @property
    def writer(self) -> Literal["python", "spark"]:
        direct = self.reader == "files" and self.publish == "commit" and self.tasks_write
        return "python" if direct else "spark"


def files_readable(facts: PathFacts) -> bool:
    """Whether the ``files`` reader may be planned at all (before the log is read for it)."""
    return facts.workers_local and facts.features_local and facts.validation != "filters"


def decide(facts: PathFacts) -> ScorePath:
    reader: Literal["files", "spark"] = (
        "files" if files_readable(facts) and facts.file_plan_ready else "spark"
    )
    # Great Expectations runs about ten Spark queries; over a Delta read each one re-plans
    # the time-travel scan (snapshot, data-skipping stats): caching first made them 2-3x
    # faster in bench/validation_cost.py (warm, 1,000 and 200,000 rows), more than the
    # cache costs. The file reader then still reads the files itself (pyarrow, faster than
    # the cached rows through Spark's Arrow path); Spark's reader reads the cached rows.
    cache = facts.validation in ("reads", "filters")
    direct = (
        facts.output_commits_with_delta_rs
        and not facts.earlier_attempt_committed
        and (
            not facts.challengers_active
            or (reader == "files" and facts.shadow_commits_with_delta_rs and facts.output_local)
        )
    )
    return ScorePath(
        reader, "commit" if direct else "staging", tasks_write=facts.output_local, cache=cache
    )


@dataclass(frozen=True)
class ChosenPath:
    """The decision and what it needs: the read plan (``files``) and the run's folder in the
    prediction table (``commit``)."""

    path: ScorePath
    plan: PartitionRead | None
    data_dir: str | None
    facts: PathFacts | None = None


def validation_kind(ctx: RunContext) -> Literal["none", "reads", "filters"]:
    """How this run's validation meets the partition's rows (see :class:`PathFacts`); an
    earlier attempt's reused outcome counts as ``reads`` (known only when validation runs),
    which changes no reader and caches nothing that is not read."""
    spec = ctx.job.validation
    if not spec.enabled or ctx.request.validate_only:
        return "none"
    return "filters" if spec.policy == "quarantine" else "reads"


def choose_reader(
    ctx: RunContext,
    spark: SparkSession,
    partition: CheckedPartition,
    models: RunModels,
    slots: list[ModelSlot],
) -> ChosenPath:
    """The reader (and whether validation caches the partition), decided before validation:
    the facts of the session, the tables and the job's validation policy, and the file plan
    when the ``files`` reader is possible. Nothing is written."""
    job = ctx.job
    facts = PathFacts(
        workers_local=spark.sparkContext.master.startswith("local"),
        features_local="://" not in job.features.table.removeprefix("file://")
        or storage.is_object_store(job.features.table),
        validation=validation_kind(ctx),
        file_plan_ready=False,
        output_commits_with_delta_rs=False,
        challengers_active=bool(models.active_challengers),
        shadow_commits_with_delta_rs=False,
        earlier_attempt_committed=False,
        output_local=not storage.is_object_store(job.output.table),
    )
    plan = _file_plan(spark, ctx, partition, slots) if files_readable(facts) else None
    facts = _replace(facts, file_plan_ready=plan is not None)
    path = decide(facts)
    return ChosenPath(path, plan if path.reader == "files" else None, None, facts)


def choose_score_path(
    ctx: RunContext,
    spark: SparkSession,
    reader: ChosenPath,
    models: RunModels,
    key_fields: list,
) -> ChosenPath:
    """The publish path, after validation: gathers the rest of :class:`PathFacts` (tables
    delta-rs commits to, an earlier attempt's committed folder) and prepares the run's
    folder in the prediction table for ``commit``."""
    job, day = ctx.job, ctx.day
    part_col = job.features.partition_column
    output_rs = tables.commits_with_delta_rs(job.output.table)
    assert reader.facts is not None
    facts = _replace(reader.facts, output_commits_with_delta_rs=output_rs)
    plan = reader.plan
    if output_rs and facts.challengers_active and plan is not None:
        shadow_scoring.ensure_shadow_table(spark, job, key_fields)
        facts = _replace(
            facts, shadow_commits_with_delta_rs=tables.commits_with_delta_rs(job.shadow_table)
        )
    if decide(facts).publish == "commit":
        written = [job.output.table, *([job.shadow_table] if facts.challengers_active else [])]
        for uri in written:
            # files an earlier attempt of this run left uncommitted go; committed ones stay,
            # and the run then stages: its publish finds that commit and does nothing
            tables.remove_uncommitted_run_folder(uri, part_col, day, ctx.run_id)
        committed = any(
            tables.folder_exists(tables.run_folder(uri, part_col, day, ctx.run_id))
            for uri in written
        )
        facts = _replace(facts, earlier_attempt_committed=committed)
    path = decide(facts)
    data_dir = (
        tables.run_folder(job.output.table, part_col, day, ctx.run_id)
        if path.publish == "commit"
        else None
    )
    ctx.record.details["publish_path"] = path.publish
    ctx.record.details["score_reader"] = path.reader
    return ChosenPath(path, plan if path.reader == "files" else None, data_dir, facts)


def _replace(facts: PathFacts, **changes: bool) -> PathFacts:
    from dataclasses import replace

    return replace(facts, **changes)


def _file_plan(
    spark: SparkSession, ctx: RunContext, partition: CheckedPartition, slots: list[ModelSlot]
) -> PartitionRead | None:
    """The read plan of :mod:`lakescore.ml.file_scoring`, or None when the log does not allow it
    (deletion vectors, column mapping, an empty partition)."""
    import pyarrow as pa

    job = ctx.job
    try:
        plan = plan_partition_read(
            job.features.table,
            job.features.partition_column,
            ctx.day,
            partition.version,
            job.features.entity_keys,
            list(dict.fromkeys(c for slot in slots for c in slot.feature_columns)),
            min_tasks=2 * spark.sparkContext.defaultParallelism,
        )
    except (OSError, pa.ArrowException):
        # A file whose footer pyarrow cannot read: Spark's reader meets it next (validation
        # first) and names the file (lakescore.quality.guards.explain_failure).
        return None
    return plan if plan is not None and plan.units else None
