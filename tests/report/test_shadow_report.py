"""The report's "Champion vs challengers" table, from challenger rows in the metrics table
(written by lakescore's own writers; no Spark, no MLflow)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lakescore.config import load_job, load_platform
from lakescore.ml.models import ResolvedModel
from lakescore.ml.shadow import Challenger, Comparison, metrics_rows
from lakescore.quality.monitoring import append_metrics, bin_edges
from lakescore.reporting.report import load_report_data, render_job_report
from tests.report.conftest import make_conf, seed_history


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    return load_platform(make_conf(tmp_path))


def _model(version: int) -> ResolvedModel:
    return ResolvedModel("churn_report", version, None, None, "src", "sklearn", (), 1)


def _comparison(correlation: float, flips: float) -> Comparison:
    return Comparison(
        rows=1_000,
        scored_rows=1_000,
        bad_scores=0,
        correlation=correlation,
        mean_difference=-0.0123,
        psi_champion=0.02,
        flip_share=flips,
        mean=0.3,
        std=0.1,
        min=0.0,
        max=1.0,
        bin_edges=bin_edges(0.0, 1.0, 10),
        bin_counts=[100] * 10,
    )


def test_comparison_table_newest_first_with_failures_escaped(platform: Any) -> None:
    seeded = seed_history(platform)
    job = load_job("churn", platform=platform)
    rows = []
    for i, (day, record) in enumerate(zip(seeded["days"], seeded["records"], strict=False)):
        ok = Challenger(0, "churn_report@challenger", _model(2))
        ok.comparison = _comparison(0.9 + i / 100, 0.01 * (i + 1))
        broken = Challenger(1, "churn_report/7", _model(7))
        broken.fail("<script>not loaded</script>")
        rows += metrics_rows(
            [ok, broken],
            run_id=record.run_id,
            job=job,
            ds=day,
            champion=_model(1),
            computed_at=record.started_at + timedelta(seconds=40),
            published=True,
        )
    append_metrics(platform.metrics_table, rows)

    page = render_job_report(platform, "churn")

    table = re.search(r'<table id="challengers">(.*?)</table>', page, re.S)
    assert table, "no comparison table"
    lines = re.findall(r'<tr class="comparison"[^>]*data-status="(\w+)">(.*?)</tr>', table.group(1))
    assert len(lines) == 6
    newest_ok = next(cells for status, cells in lines if status == "ok")
    assert "2026-11-20" in newest_ok and "v2 vs v1" in newest_ok
    assert '<td class="correlation num">0.92</td>' in newest_ok
    assert '<td class="flip-share num">3% at 0.5</td>' in newest_ok
    assert '<td class="mean-difference num">-0.0123</td>' in newest_ok
    assert "&lt;script&gt;not loaded&lt;/script&gt;" in table.group(1)
    assert "<script>" not in page
    # challenger rows stay out of the champion's charts (histogram, PSI, cards)
    data = load_report_data(platform, "churn")
    assert [m["role"] for m in data.metrics] == ["champion"] * 3
    assert len(data.comparisons) == 6
    assert data.latest_published_metrics()["model_version"] == 1


def test_no_challengers_no_table(platform: Any) -> None:
    seed_history(platform)
    assert 'id="challengers"' not in render_job_report(platform, "churn")
