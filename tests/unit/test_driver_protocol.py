"""The warm driver's contract without a server: what a request may say, where callers look for
the driver, how events read in a task log, and when a cancelled run may stop (never once its
publish began)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from lakescore.config import DriverSpec
from lakescore.driver.client import DriverClient, describe_event
from lakescore.driver.protocol import RunBody
from lakescore.driver.server import RunCancelled, Ticket


def test_a_request_names_one_partition_or_a_range():
    assert not RunBody(job="churn", ds="2026-11-20").ranged
    ranged = RunBody.model_validate({"job": "churn", "from": "2026-11-01", "to": "2026-11-30"})
    assert ranged.ranged and ranged.what == "score churn 2026-11-01..2026-11-30"
    assert ranged.model_dump(by_alias=True, exclude_none=True)["from"] == "2026-11-01"
    for bad in (
        {"job": "churn"},
        {"job": "churn", "ds": "2026-11-20", "from": "2026-11-01", "to": "2026-11-02"},
        {"job": "churn", "from": "2026-11-01"},
        {"job": "churn", "from": "2026-11-01", "to": "2026-11-02", "validated": True},
        {"job": "churn", "ds": "2026-11-20", "model_version": 0},
        {"job": "churn", "ds": "2026-11-20", "step": "publish"},
        {"job": "churn", "ds": "2026-11-20", "surprise": 1},
    ):
        with pytest.raises(ValidationError):
            RunBody.model_validate(bad)


def test_callers_find_the_driver_from_the_config_or_the_environment(monkeypatch):
    monkeypatch.delenv("LAKESCORE_DRIVER_URL", raising=False)
    assert DriverSpec().url() == "http://127.0.0.1:8790"
    assert DriverSpec(host="0.0.0.0", port=9000).url() == "http://127.0.0.1:9000"
    assert DriverSpec(enabled=False).url() is None
    monkeypatch.setenv("LAKESCORE_DRIVER_URL", "http://driver:8790/")
    assert DriverSpec(enabled=False).url() == "http://driver:8790"
    monkeypatch.setenv("LAKESCORE_DRIVER_URL", "off")
    assert DriverSpec().url() is None
    monkeypatch.setenv("LAKESCORE_DRIVER_TOKEN", "t0ken")
    assert DriverSpec().token() == "t0ken"
    with pytest.raises(ValidationError):
        DriverSpec(token="in a config file")  # never: only the environment holds it
    client = DriverClient("http://127.0.0.1:1/", token="x", heartbeat_s=5)
    assert client.url == "http://127.0.0.1:1" and client.read_timeout_s > 5


def test_events_read_as_task_log_lines():
    assert describe_event({"event": "stage", "stage": "validate", "detail": "passed"}) == (
        "[validate] passed"
    )
    assert describe_event({"event": "heartbeat", "elapsed_s": 10}) is None
    line = describe_event(
        {
            "event": "partition",
            "outcome": {"ds": "2026-11-02", "status": "succeeded", "rows": 1200, "seconds": 2.5},
            "progress": "2/3 partitions",
        }
    )
    assert line == "partition 2026-11-02 succeeded: 1,200 rows in 2.5s (2/3 partitions)"
    failed = {"event": "result", "status": "failed", "exit_code": 2, "error": "job 'x': bad"}
    assert describe_event(failed) == "driver run failed (exit 2): job 'x': bad"


def test_a_cancelled_run_stops_before_its_publish_and_never_after_it_began():
    async def stages(cancel_before: str, names: list[str]) -> list[str]:
        ticket = Ticket(RunBody(job="churn", ds="2026-11-20"), None, None, 1.0)  # type: ignore[arg-type]
        entered = []
        for name in names:
            if name == cancel_before:
                ticket.cancelled = True
            try:
                ticket.enter_stage(name)
            except RunCancelled:
                entered.append(f"stopped at {name}")
                continue
            entered.append(name)
        return entered

    run = ["check", "resolve_model", "validate", "score", "audit", "publish", "shadow", "lineage"]
    got = asyncio.run(stages("score", run))
    assert got[:2] == ["check", "resolve_model"] and got[3] == "stopped at score"
    assert got[-1] == "lineage"  # the failed attempt is still recorded
    assert asyncio.run(stages("publish", run))[5] == "stopped at publish"  # nothing committed
    assert asyncio.run(stages("shadow", run))[-2:] == ["shadow", "lineage"]  # publish began
    # a range: cancelled during one partition's publish, the next partition stops at once
    again = asyncio.run(stages("shadow", [*run, "check", "validate"]))
    assert again[-4:] == ["shadow", "lineage", "stopped at check", "stopped at validate"]
