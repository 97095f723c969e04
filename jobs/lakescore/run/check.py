"""Stage ``check``: the cheap, JVM-free checks that come before anything else.

The partition exists in the feature table (delta-rs reads the log), the lineage table can take
this attempt's row and the entity keys are columns of the table. The commonest bad input (a
partition not written yet) fails here in a second, without starting Spark.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakescore.errors import BadInputError
from lakescore.lakehouse import tables
from lakescore.quality import guards
from lakescore.run.context import RunContext


@dataclass(frozen=True)
class CheckedPartition:
    """The feature partition as the Delta log describes it, at one pinned table version."""

    info: tables.PartitionInfo
    feature_schema: dict[str, str]  # column -> type name, of the whole feature table

    @property
    def version(self) -> int:
        return self.info.version


def check_partition(ctx: RunContext) -> CheckedPartition:
    job, day, record = ctx.job, ctx.day, ctx.record
    part_col = job.features.partition_column
    with ctx.stages("check", f"partition {day} of {job.features.table}"):
        info = tables.partition_info(job.features.table, part_col, day, ctx.request.input_version)
        record.input_version = info.version
        if info.files == 0:
            raise BadInputError(
                f"partition {part_col}={day} not found in the feature table "
                f"(table version {info.version})",
                file=job.features.table,
            )
        record.input_rows = info.rows
        guards.check_lineage_appendable(ctx.platform.lineage_table, job=job.name)
        feature_schema = tables.table_columns(job.features.table, info.version)
        for key in job.features.entity_keys:
            if key not in feature_schema:
                raise BadInputError(
                    "entity key column is missing from the feature table",
                    file=job.features.table,
                    column=key,
                    key="features.entity_keys",
                )
    return CheckedPartition(info, feature_schema)


def refuse_empty_partition(ctx: RunContext, partition: CheckedPartition) -> None:
    """An empty partition fails unless the job publishes empty partitions."""
    if fails_when_empty(ctx, partition):
        part_col = ctx.job.features.partition_column
        raise BadInputError(
            f"partition {part_col}={ctx.day} of the feature table is empty "
            "(set output.on_empty_partition: publish_empty to publish an empty partition)",
            file=ctx.job.features.table,
        )


def fails_when_empty(ctx: RunContext, partition: CheckedPartition) -> bool:
    return partition.info.rows == 0 and ctx.job.output.on_empty_partition == "fail"
