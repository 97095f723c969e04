"""The values every stage of a run shares: what was asked (:class:`RunRequest`), who is
running it (:class:`RunContext`) and what it returns (:class:`RunResult`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.lakehouse.lineage import LineageRecord, utcnow
from lakescore.run.progress import ProgressReporter, StageTimer


@dataclass(frozen=True)
class RunRequest:
    """What the caller asked of this run, beyond the job and the partition.

    ``model_version`` pins a version (wins over the job's alias); ``input_version`` pins the
    feature table's snapshot. ``validate_only`` stops after validation (Airflow's first
    task); ``validated`` says an earlier ``validate`` attempt of the same Airflow run checked
    this snapshot, so its outcome is taken from lineage. ``shadow=False`` leaves the job's
    challengers out of the run.
    """

    model_version: int | None = None
    input_version: int | None = None
    validate_only: bool = False
    validated: bool = False
    shadow: bool = True


@dataclass
class RunContext:
    """One attempt of (job, ds): its identity, its lineage row in the making and its timer."""

    job: ScoringJob
    day: date
    platform: PlatformConfig
    request: RunRequest
    run_id: str
    txn_version: int
    record: LineageRecord
    staging_dir: Path
    stages: StageTimer

    @property
    def progress(self) -> ProgressReporter:
        return self.stages.progress

    @property
    def ds(self) -> str:
        return self.day.isoformat()


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

    @classmethod
    def of(
        cls, ctx: RunContext, *, status: str, rows: int, input_version: int, version: int | None
    ) -> RunResult:
        record = ctx.record
        return cls(
            job=ctx.job.name,
            ds=ctx.day,
            run_id=ctx.run_id,
            status=status,
            rows=rows,
            model_name=record.model_name or "",
            model_version=record.model_version or 0,
            input_table=ctx.job.features.table,
            input_version=input_version,
            output_table=ctx.job.output.table,
            output_version=version,
            seconds=(utcnow() - record.started_at).total_seconds(),
        )

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
