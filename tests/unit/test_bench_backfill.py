"""Unit tests for the backfill benchmark's checks and report (bench/backfill.py): a partition
published twice or short of rows fails the run, the goals are judged against their bars, an
extrapolated figure says so. Small delta-rs tables, no Spark, no Airflow."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import backfill as bf

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


def _publish(uri: str, day: date, keys: list[int]) -> None:
    """One commit replacing ``day``, with the commit metadata a lakescore publish carries."""
    table = pa.table(
        {"customer_id": pa.array(keys, pa.int64()), "ds": pa.array([day] * len(keys), pa.date32())}
    )
    exists = Path(uri, "_delta_log").exists()
    write_deltalake(
        uri,
        table,
        partition_by=["ds"],
        mode="overwrite" if exists else "error",
        predicate=f"ds = DATE '{day}'" if exists else None,
        commit_properties=CommitProperties(
            custom_metadata={"userMetadata": json.dumps({"ds": day.isoformat()})}
        ),
    )


def test_each_day_published_once_with_its_rows_passes(tmp_path: Path) -> None:
    uri = str(tmp_path / "scores")
    _publish(uri, D1, [1, 2, 3])
    _publish(uri, D2, [1, 2, 3])
    bf.check_published(uri, [D1, D2], {D1: 3, D2: 3})


def test_a_day_published_twice_fails_naming_it(tmp_path: Path) -> None:
    uri = str(tmp_path / "scores")
    _publish(uri, D1, [1, 2, 3])
    _publish(uri, D2, [1, 2, 3])
    _publish(uri, D2, [1, 2, 3])  # a rerun replaces: rows fine, but two publishes
    with pytest.raises(SystemExit, match="2026-10-02: 2 publishes"):
        bf.check_published(uri, [D1, D2], {D1: 3, D2: 3})
    # counted only after a version: the rerun alone is the one publish of D2 since version 1
    bf.check_published(uri, [D2], {D2: 3}, after_version=1)


def test_missing_or_duplicate_keys_fail(tmp_path: Path) -> None:
    uri = str(tmp_path / "scores")
    _publish(uri, D1, [1, 1, 2])
    with pytest.raises(SystemExit, match=r"2026-10-01: 3 rows \(2 keys\), not 3"):
        bf.check_published(uri, [D1], {D1: 3})


def test_median_stages_per_stage_over_the_runs_that_had_it() -> None:
    stages = bf.median_stages([{"validate": 1.0, "score": 4.0}, {"score": 2.0}, {"score": 3.0}])
    assert stages == {"validate": 1.0, "score": 3.0}


def _result(airflow_wall: float, extrapolated: bool) -> dict:
    stages = {"validate_partition": {"validate": 3.0}, "score_and_publish": {"score": 2.0}}
    return {
        "days": 30,
        "rows_per_day": 200_000,
        "cores": 2,
        "when": "now",
        "commit": "abc",
        "load_start": [0.1],
        "load_end": [0.2],
        "driver": True,
        "cli_range": {
            "wall_s": 100.0,
            "first_day_s": 20.0,
            "later_days_median_s": 2.7,
            "later_days_stages_median": {"score": 2.0},
        },
        "small_partition": {
            "validation_on_s": [9.0],
            "validation_off_s": [6.0],
            "on_over_off": 1.5,
            "warm_validate_stage_median_s": 2.5,
        },
        "airflow_backfill": {
            "wall_s": airflow_wall,
            "measured_days": 3 if extrapolated else 30,
            "measured_wall_s": airflow_wall / 10 if extrapolated else airflow_wall,
            "extrapolated": extrapolated,
            "max_active_runs": 2,
        },
        "tasks": {
            task: {"runs": 30, "duration_median_s": 5.0, "stages_median_s": s}
            for task, s in stages.items()
        },
    }


def test_the_report_judges_each_goal_against_its_bar(tmp_path: Path) -> None:
    text = bf.write_results(_result(250.0, extrapolated=False), tmp_path)
    goals = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert goals["| airflow_backfill / cli_range"].endswith("| 2.50 | <= 3.0 | yes |")
    assert goals["| small partition: validation on / off"].endswith("| 1.50 | <= 2.0 | yes |")
    assert goals["| warm validate stage, 1,000 rows (s)"].endswith("| 2.50 | < 2.0 | **no** |")
    assert "score task's own `validate` stage takes 0.00 s" in text
    saved = json.loads((tmp_path / "backfill_results.json").read_text())
    assert saved["checks"][0] == {"goal": "airflow_backfill / cli_range", "value": 2.5, "bar": 3.0}


def test_an_extrapolated_backfill_says_so(tmp_path: Path) -> None:
    text = bf.write_results(_result(400.0, extrapolated=True), tmp_path)
    assert "400.0 s (extrapolated from 3 days: 40.0 s)" in text
    assert "| 4.00 | <= 3.0 | **no** |" in text
