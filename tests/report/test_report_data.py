"""The report's data (lakescore.reporting.data): what the page shows, checked on real lineage and
metrics tables written by lakescore's own writers, without rendering any HTML."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakescore.config import load_platform
from lakescore.lakehouse.lineage import append_lineage
from lakescore.quality.monitoring import append_metrics
from lakescore.reporting import data
from tests.report.conftest import (
    BASELINE,
    DAY_COUNTS,
    lineage_record,
    make_conf,
    metrics_for,
    seed_history,
)


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    return load_platform(make_conf(tmp_path))


@pytest.fixture
def seeded(platform: Any) -> dict[str, Any]:
    """Three published days (2026-11-18..20) and a failed attempt of the last day."""
    return seed_history(platform)


def test_rows_come_back_in_the_stated_order(platform: Any, seeded: dict[str, Any]) -> None:
    report = data.load_report_data(platform, "churn", limit_runs=3)
    attempts = [r.attempt_id for r in seeded["records"]]
    assert [r["attempt_id"] for r in report.all_runs] == attempts  # oldest first
    assert [r["attempt_id"] for r in report.runs] == attempts[::-1][:3]  # newest first, limited
    assert report.total_runs == 4
    assert [m["ds"] for m in report.metrics] == seeded["days"]
    assert report.lineage_version == 0 and report.metrics_version == 0
    assert data.last_run_per_job(platform)["churn"]["status"] == "failed"
    other = data.load_report_data(platform, "nope")
    assert (other.runs, other.metrics, other.total_runs) == ([], [], 0)


def test_summary_of_the_shown_attempts(platform: Any, seeded: dict[str, Any]) -> None:
    summary = data.job_summary(data.load_report_data(platform, "churn"))
    assert summary.last_run is not None and summary.last_run["status"] == "failed"
    latest = summary.latest_partition
    assert latest is not None and latest["ds"] == date(2026, 11, 20)
    assert latest["output_version"] == 3  # the failed attempt after it does not count
    assert (summary.succeeded, summary.attempts) == (3, 4)
    assert summary.success_rate == pytest.approx(0.75)
    assert summary.priced_runs == 0 and summary.total_cost is None
    assert summary.drift is not None and summary.drift["ds"] == date(2026, 11, 20)
    assert summary.worst_psi == pytest.approx(0.05)  # max(psi_previous 0.03, psi_baseline 0.05)


def test_histogram_of_the_latest_published_run_with_its_baseline(
    platform: Any, seeded: dict[str, Any]
) -> None:
    histogram = data.score_histogram(data.load_report_data(platform, "churn"))
    assert histogram is not None
    assert histogram.counts == DAY_COUNTS[-1] and histogram.rows == sum(DAY_COUNTS[-1])
    assert len(histogram.edges) == len(histogram.counts) + 1
    assert histogram.shares == pytest.approx([c / sum(DAY_COUNTS[-1]) for c in DAY_COUNTS[-1]])
    assert histogram.baseline == pytest.approx([b / sum(BASELINE) for b in BASELINE])
    assert data.score_histogram(data.load_report_data(platform, "nope")) is None


def test_psi_points_keep_the_published_row_of_a_day(platform: Any, seeded: dict[str, Any]) -> None:
    last_day = seeded["days"][-1]
    refused = metrics_for(
        "refused-rerun",
        "churn",
        last_day,
        [1] * 10,
        baseline=BASELINE,
        psi_previous=0.9,
        psi_baseline=0.8,
        status="fail",
        published=False,
        computed_at=datetime(2026, 11, 22, tzinfo=UTC),
    )
    append_metrics(platform.metrics_table, [refused])
    report = data.load_report_data(platform, "churn")
    points = data.psi_points(report.metrics, limit=30)
    assert [p.ds for p in points] == seeded["days"]
    assert [(p.psi_previous, p.psi_baseline) for p in points] == [
        (None, 0.004),
        (0.006, 0.008),
        (0.03, 0.05),
    ]
    assert all(p.published for p in points)
    assert [p.ds for p in data.psi_points(report.metrics, limit=2)] == seeded["days"][1:]


def test_rows_per_partition_and_a_day_without_a_successful_run(
    platform: Any, seeded: dict[str, Any]
) -> None:
    lonely = lineage_record(
        "churn", date(2026, 11, 21), "failed", datetime(2026, 11, 22, 6, tzinfo=UTC)
    )
    rollback = lineage_record(
        "churn",
        date(2026, 11, 18),
        "succeeded",
        datetime(2026, 11, 22, 7, tzinfo=UTC),
        output_version=9,
        output_rows=1,
    )
    rollback.action = "rollback"  # not a scoring run: it does not change the chart
    append_lineage(platform.lineage_table, [lonely, rollback])
    parts = data.rows_per_partition(data.load_report_data(platform, "churn").all_runs, limit=30)
    assert [(p.ds, p.published_rows, p.last_status) for p in parts] == [
        (date(2026, 11, 18), sum(DAY_COUNTS[0]), "succeeded"),
        (date(2026, 11, 19), sum(DAY_COUNTS[1]), "succeeded"),
        (date(2026, 11, 20), sum(DAY_COUNTS[2]), "failed"),  # published earlier, failed since
        (date(2026, 11, 21), None, "failed"),
    ]


def test_validation_outcomes_and_run_lines(platform: Any, seeded: dict[str, Any]) -> None:
    report = data.load_report_data(platform, "churn")
    outcomes = data.validation_outcomes(report.runs)
    assert [o.status for o in outcomes] == ["passed", "passed", "passed", "failed"]  # oldest first
    assert (outcomes[-1].failed, outcomes[-1].evaluated) == (2, 9)

    lines = data.run_lines(report)
    assert [line.status for line in lines] == ["failed", "succeeded", "succeeded", "succeeded"]
    failed, newest_ok = lines[0], lines[1]
    assert failed.error_class == "BadInputError" and failed.model == ""
    assert newest_ok.model == "churn_report v1 @champion"
    assert newest_ok.rows == sum(DAY_COUNTS[2])
    # the lineage rows carry no drift: it comes from the run's metrics row
    assert newest_ok.drift_status == "ok" and newest_ok.worst_psi == pytest.approx(0.05)


def test_no_validation_recorded_means_no_outcomes(platform: Any) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    append_lineage(
        platform.lineage_table,
        [lineage_record("churn", date(2026, 11, 1), "succeeded", t0 + timedelta(minutes=1))],
    )
    assert data.validation_outcomes(data.load_report_data(platform, "churn").runs) == []
