"""What a caller sends the warm driver and what comes back: one typed request body, and
progress as NDJSON event lines ending with one ``result`` line.

Requests take the arguments ``jobs/score.py`` and ``jobs/validate.py`` take (job, partition or
range, pinned model and input versions, ``validated``, ``shadow``, conf folder), plus the
calling Airflow task's ids, which the lineage rows carry (a spark-submit job inherits them as
``AIRFLOW_CTX_*``). Imports pydantic only: the client side stays light.

Events, one JSON object per line, each with ``event``:

==============  ===========================================================
``accepted``    the run is in the driver's queue (``ahead``: runs before it)
``queued``      still waiting (every ``heartbeat_s``)
``stage``       a stage of the run started or reported (``stage``, ``detail``)
``tasks``       Spark tasks done / total of the scoring pass
``partition``   one partition of a range finished (its outcome and the range's progress)
``heartbeat``   the run is alive (every ``heartbeat_s`` without another line)
``result``      the end: ``status``, ``exit_code`` (0 ok, 1 failure, 2 bad input),
                ``error`` (one line), ``run_id``, ``result`` or ``partitions``
==============  ===========================================================
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MEDIA_TYPE = "application/x-ndjson"


class TaskIds(BaseModel):
    """The Airflow task instance a run belongs to (what its lineage row records)."""

    model_config = ConfigDict(extra="forbid")

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None


class RunBody(BaseModel):
    """``POST /run``: validate or score one partition (``ds``), or every day of a range
    (``from``/``to``), of ``job``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    job: str
    step: Literal["score", "validate"] = "score"
    ds: str | None = None
    from_ds: str | None = Field(default=None, alias="from")
    to_ds: str | None = Field(default=None, alias="to")
    model_version: int | None = Field(default=None, ge=1)
    input_version: int | None = Field(default=None, ge=0)
    validated: bool = False
    shadow: bool = True
    # the caller's conf folder and Spark profile: the driver refuses (409) when they are not
    # its own, so the caller falls back to spark-submit
    conf_dir: str | None = None
    profile: str | None = None
    airflow: TaskIds = TaskIds()

    @model_validator(mode="after")
    def _one_partition_or_a_range(self) -> RunBody:
        ranged = self.from_ds is not None or self.to_ds is not None
        if ranged == (self.ds is not None) or (ranged and None in (self.from_ds, self.to_ds)):
            raise ValueError("give 'ds', or 'from' and 'to'")
        if ranged and (self.input_version is not None or self.validated):
            raise ValueError("'input_version' and 'validated' name one partition: not with a range")
        return self

    @property
    def ranged(self) -> bool:
        return self.ds is None

    @property
    def what(self) -> str:
        span = self.ds if self.ds is not None else f"{self.from_ds}..{self.to_ds}"
        return f"{self.step} {self.job} {span}"


def event_line(kind: str, **fields: Any) -> bytes:
    """One NDJSON line."""
    return (json.dumps({"event": kind, **fields}, default=str) + "\n").encode()
