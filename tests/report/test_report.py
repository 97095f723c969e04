"""The job report: real runs (Spark, MLflow, Delta) rendered and looked at in headless Chromium,
plus the edge cases (no runs, only failures, no baseline, hostile text) without Spark."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lakescore.config import load_job, load_platform
from lakescore.lakehouse import tables
from lakescore.lakehouse.lineage import append_lineage
from lakescore.quality.monitoring import append_metrics
from lakescore.reporting.report import render_job_report, write_job_report
from tests.conftest import DAYS, World
from tests.report.conftest import BASELINE, lineage_record, make_conf, metrics_for
from tests.support.browser import assert_not_blank, full_page_screenshot

BIN = Path(sys.executable).parent
SCORED_DAYS = DAYS[:2]
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quotes\""


# --------------------------------------------------------------------------- helpers


class _Tags(HTMLParser):
    """Every start tag with its attributes (to prove nothing hostile became markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse_tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def svgs(page: str) -> dict[str, ET.Element]:
    """Each inline chart, parsed as XML (a malformed chart fails here)."""
    found = {}
    for chunk in re.findall(r"<svg\b.*?</svg>", page, flags=re.S):
        element = ET.fromstring(chunk)
        found[element.get("id")] = element
    return found


SVG = "{http://www.w3.org/2000/svg}"


def lakescore_cli(conf: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lakescore"), "--conf", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAKESCORE_CONF": str(conf)},
    )


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def scored(world: World, spark: Any) -> list[Any]:
    """Two days scored through the real run (lineage + metrics written by the run, lakescore.run)."""
    from lakescore.run import score_partition

    job = world.job()
    return [score_partition(job, day, platform=world.platform, spark=spark) for day in SCORED_DAYS]


@pytest.mark.integration
def test_report_of_real_runs_in_a_browser(world: World, scored: list[Any], browser, tmp_path):
    from selenium.webdriver.common.by import By

    platform, job = world.platform, world.job()
    lineage = tables.select_rows(platform.lineage_table, sort_by="started_at", job="churn")
    metrics = tables.select_rows(platform.metrics_table, sort_by="computed_at", job="churn")
    by_run = {m["run_id"]: m for m in metrics}
    for result in scored:
        assert result.run_id in by_run, f"the run wrote no metrics row for {result.run_id}"
    latest = by_run[scored[-1].run_id]
    assert latest["published"] and latest["bin_counts"], latest
    assert latest["baseline_bin_counts"], "the test model has a training baseline"

    out = write_job_report(platform, "churn", tmp_path / "site" / "index.html")
    browser.get(out.as_uri())
    assert browser.find_element(By.ID, "job-name").text == "churn"

    # Histogram of the latest published run: one bar per bin, the counts of its metrics row.
    bars = browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram rect.bar")
    assert len(bars) == len(latest["bin_counts"]) == job.monitoring.bins
    assert [int(b.get_attribute("data-count")) for b in bars] == latest["bin_counts"]
    assert sum(float(b.get_attribute("height")) for b in bars) > 0
    assert sum(b.rect["height"] for b in bars) > 20, "the bars are not drawn on the page"
    tallest = max(range(len(bars)), key=lambda i: float(bars[i].get_attribute("height")))
    assert tallest == max(range(len(bars)), key=lambda i: latest["bin_counts"][i])
    (baseline,) = browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram path.baseline")
    assert int(baseline.get_attribute("data-bins")) == len(latest["bin_counts"])
    assert baseline.get_attribute("d").count("H") == len(latest["bin_counts"])
    assert baseline.rect["width"] > 100, "the baseline overlay is not drawn across the bins"
    legend = browser.find_element(By.CSS_SELECTOR, "svg#score-histogram g.legend").text
    assert "training baseline" in legend

    # PSI over time: a point for every scored day, threshold lines from the job config.
    points = browser.find_elements(By.CSS_SELECTOR, "svg#psi-over-time circle.psi-point")
    point_days = {p.get_attribute("data-ds") for p in points}
    for day in SCORED_DAYS:
        assert day.isoformat() in point_days, f"no PSI point for {day}: {sorted(point_days)}"
    assert browser.find_elements(By.CSS_SELECTOR, "svg#psi-over-time path.psi-line")
    warn = browser.find_element(By.CSS_SELECTOR, "svg#psi-over-time line.threshold-warn")
    assert float(warn.get_attribute("data-value")) == job.monitoring.psi_warn
    fail = browser.find_element(By.CSS_SELECTOR, "svg#psi-over-time line.threshold-fail")
    assert float(fail.get_attribute("data-value")) == job.monitoring.psi_fail

    # Rows per day: the rows each scored day published.
    for result in scored:
        bar = browser.find_element(
            By.CSS_SELECTOR, f'svg#rows-per-ds rect.bar[data-ds="{result.ds.isoformat()}"]'
        )
        assert int(bar.get_attribute("data-rows")) == result.rows

    # Runs table: one row per lineage attempt of the job (newest first), right versions.
    rows = browser.find_elements(By.CSS_SELECTOR, "table#runs tbody tr.run")
    newest = list(reversed(lineage))[:30]
    assert [r.get_attribute("data-attempt-id") for r in rows] == [r["attempt_id"] for r in newest]
    for result in scored:
        (row,) = [r for r in rows if r.get_attribute("data-run-id") == result.run_id]
        assert row.get_attribute("data-status") == "succeeded"
        model = row.find_element(By.CSS_SELECTOR, "td.model")
        assert model.get_attribute("data-model-version") == str(result.model_version)
        assert model.text.startswith(f"{result.model_name} v{result.model_version}")
        assert row.find_element(By.CSS_SELECTOR, "td.input-version").text == str(
            result.input_version
        )
        assert row.find_element(By.CSS_SELECTOR, "td.output-version").text == str(
            result.output_version
        )
        assert row.find_element(By.CSS_SELECTOR, "td.ds").text == result.ds.isoformat()

    # Validation: what lineage says per run, with a working link to the report file.
    mine = [r for r in lineage if r["run_id"] in {s.run_id for s in scored}]
    if job.validation.enabled:
        assert all(r["validation_status"] for r in mine), "the run recorded no validation"
    cells = browser.find_elements(By.CSS_SELECTOR, "svg#validation-outcomes rect.validation-cell")
    if any(r.get("validation_status") for r in newest):
        by_id = {c.get_attribute("data-run-id"): c.get_attribute("data-status") for c in cells}
        for run in mine:
            assert by_id[run["run_id"]] == run["validation_status"]
    for run in mine:
        if run.get("validation_report"):
            row = browser.find_element(By.CSS_SELECTOR, f'tr.run[data-run-id="{run["run_id"]}"]')
            link = row.find_element(By.CSS_SELECTOR, "td.validation a.report-link")
            target = Path(link.get_attribute("href").removeprefix("file://"))
            assert target.is_file(), f"the report link points nowhere: {target}"

    shot = full_page_screenshot(browser, tmp_path / "lakescore-report.png")
    assert_not_blank(shot)


@pytest.mark.integration
def test_cli_writes_the_report_and_refuses_unknown_jobs(world: World, scored: list[Any]):
    out = lakescore_cli(world.conf_dir, "report", "--job", "churn", "--json")
    assert out.returncode == 0, out.stderr
    path = Path(json.loads(out.stdout)["path"])
    assert path == Path(world.platform.reports_root) / "churn" / "index.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "score-histogram" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page, "the page must not load anything from outside"

    plain = lakescore_cli(world.conf_dir, "report", "--job", "churn", "--out", str(path))
    assert plain.returncode == 0 and plain.stdout.strip() == str(path), plain.stderr

    bad = lakescore_cli(world.conf_dir, "report", "--job", "nope")
    assert bad.returncode == 2, bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unknown job" in errors[0], bad.stderr
    assert "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- edge cases


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    return load_platform(make_conf(tmp_path, description=f"Churn scores {HOSTILE}"))


def test_a_job_without_runs_shows_empty_states(platform: Any):
    page = render_job_report(platform, "churn")
    for element_id, words in [
        ("runs-empty", "No runs yet"),
        ("score-histogram-empty", "No score metrics yet"),
        ("psi-over-time-empty", "No drift metrics yet"),
        ("rows-per-ds-empty", "No runs yet"),
        ("validation-outcomes-empty", "No runs yet"),
    ]:
        match = re.search(rf'<p class="empty" id="{element_id}">([^<]*)</p>', page)
        assert match, f"no empty state {element_id}"
        assert words in match.group(1)
    assert "<svg" not in page
    assert 'id="runs"' not in page


def test_text_from_config_and_lineage_is_escaped_and_failed_runs_render(platform: Any):
    started = datetime(2026, 11, 20, 6, tzinfo=UTC)
    failed = lineage_record(
        "churn",
        date(2026, 11, 20),
        "failed",
        started,
        error_class="ScoringFailure",
        error=f"boom {HOSTILE}\nsecond line",
        model_name=f"m{HOSTILE}",
        model_version=2,
        validation_status="failed",
        validation_evaluated=5,
        validation_failed=1,
        validation_report=f"javascript:alert(1)//{HOSTILE}",
    )
    append_lineage(platform.lineage_table, [failed])

    page = render_job_report(platform, "churn")
    tags = parse_tags(page)
    assert "script" not in {tag for tag, _ in tags}
    assert "img" not in {tag for tag, _ in tags}
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    assert not [
        attrs for tag, attrs in tags if tag == "a" and "javascript" in (attrs.get("href") or "")
    ], "a javascript: link was made from the validation report path"
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert page.count(escaped) >= 3  # description, error, model name (and report text)
    assert "&amp; &quot;quotes&quot;" in page
    assert re.search(r'<tr class="run-error"[^>]*><td colspan="12"><details', page)

    # Only a failed run: the table shows it in red with its error; charts say why they are empty.
    (row,) = re.findall(r'<tr class="run [^"]*"[^>]*>', page)
    assert 'class="run bad"' in row and 'data-status="failed"' in row
    assert 'id="score-histogram-empty"' in page
    assert re.search(r'<text class="failed-marker"[^>]*data-ds="2026-11-20"', page)
    cell = svgs(page)["validation-outcomes"].find(f"{SVG}rect")
    assert cell is not None and cell.get("data-status") == "failed"


def test_histogram_without_baseline_and_psi_with_gaps(platform: Any):
    t0 = datetime(2026, 11, 21, 6, tzinfo=UTC)
    days = [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 20)]
    records, metrics = [], []
    for i, day in enumerate(days):
        record = lineage_record(
            "churn",
            day,
            "succeeded",
            t0 + timedelta(minutes=i),
            output_version=i,
            output_rows=1000 + i,
            model_name="churn_report",
            model_version=1,
        )
        records.append(record)
        metrics.append(
            metrics_for(
                record.run_id,
                "churn",
                day,
                [100 * (10 - b) + i for b in range(10)],
                baseline=None,
                psi_previous=None if i == 0 else 0.02 * i,
                psi_baseline=None,
                computed_at=t0 + timedelta(minutes=i, seconds=30),
            )
        )
    # a refused (drift fail) rerun of the last day after its publish: published still wins
    metrics.append(
        metrics_for(
            "refused-run",
            "churn",
            days[-1],
            [1] * 10,
            baseline=BASELINE,
            psi_previous=0.9,
            psi_baseline=0.8,
            status="fail",
            published=False,
            computed_at=t0 + timedelta(hours=1),
        )
    )
    append_lineage(platform.lineage_table, records)
    append_metrics(platform.metrics_table, metrics)

    page = render_job_report(platform, "churn")
    charts = svgs(page)
    histogram = charts["score-histogram"]
    bars = histogram.findall(f"{SVG}rect[@class='bar']")
    assert [int(b.get("data-count")) for b in bars] == metrics[2]["bin_counts"]
    assert histogram.find(f"{SVG}path[@class='baseline']") is None
    assert "no training baseline recorded" in ET.tostring(histogram, encoding="unicode")

    psi = charts["psi-over-time"]
    points = psi.findall(f"{SVG}circle")
    assert sorted(p.get("data-ds") for p in points) == ["2026-11-18", "2026-11-20"]
    assert all("refused" not in p.get("class") for p in points)
    assert [float(p.get("data-value")) for p in points] == pytest.approx([0.02, 0.04])
    (line,) = psi.findall(f"{SVG}path[@class='psi-line psi-previous']")
    assert line.get("d").count("M") == 1 and line.get("d").count("L") == 1

    rows = charts["rows-per-ds"].findall(f"{SVG}rect[@class='bar']")
    assert [(r.get("data-ds"), int(r.get("data-rows"))) for r in rows] == [
        (d.isoformat(), 1000 + i) for i, d in enumerate(days)
    ]
    assert 'id="validation-outcomes-empty"' in page  # these runs recorded no validation


def test_a_multiclass_jobs_histogram_shows_its_class_names(platform: Any):
    """A multiclass job's metrics rows hold rows per predicted class (``bin_labels``): the
    histogram is their shares, one bar per class, named on the axis, without a baseline."""
    day, t0 = date(2026, 11, 20), datetime(2026, 11, 21, 6, tzinfo=UTC)
    classes = ["setosa", "versicolor", f"virginica {HOSTILE}"]
    record = lineage_record(
        "churn", day, "succeeded", t0, output_version=0, output_rows=600, model_version=1
    )
    row = metrics_for(
        record.run_id,
        "churn",
        day,
        [100, 200, 300],
        baseline=None,
        psi_previous=0.0123,
        psi_baseline=None,
        computed_at=t0 + timedelta(seconds=30),
    )
    row.update(bin_edges=[0.0, 1.0, 2.0, 3.0], bin_labels=classes)
    append_lineage(platform.lineage_table, [record])
    append_metrics(platform.metrics_table, [row])

    page = render_job_report(platform, "churn")
    assert "script" not in {tag for tag, _ in parse_tags(page)}
    histogram = svgs(page)["score-histogram"]
    bars = histogram.findall(f"{SVG}rect[@class='bar']")
    assert [b.get("data-label") for b in bars] == classes
    assert [int(b.get("data-count")) for b in bars] == [100, 200, 300]
    tips = [b.find(f"{SVG}title").text for b in bars]
    assert tips[0] == "class setosa: 100 rows (16.7%)" and tips[2].startswith("class virginica <")
    ticks = [t.text for t in histogram.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert "setosa" in ticks and "versicolor" in ticks
    assert any(t.startswith("virginica <script") and t.endswith("…") for t in ticks)
    assert not {"0", "1", "2", "3"} & set(ticks), "bin numbers instead of class names"
    text = ET.tostring(histogram, encoding="unicode")
    assert "predicted class" in text and "training baseline" not in text
    assert re.search(r'<figure class="chart" id="chart-histogram"><h2>Predicted class shares', page)
    assert "600 rows over 3 classes, PSI of the class shares vs previous partition 0.0123" in page


def test_unknown_job_and_limit_runs(platform: Any, tmp_path: Path):
    from lakescore.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown job"):
        render_job_report(platform, "nope")
    with pytest.raises(BadInputError, match="job names are lowercase"):
        write_job_report(platform, "../etc")

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    records = [
        lineage_record(
            "churn", date(2026, 11, 1) + timedelta(days=i), "succeeded", t0 + timedelta(days=i)
        )
        for i in range(5)
    ]
    append_lineage(platform.lineage_table, records)
    page = render_job_report(platform, "churn", limit_runs=3)
    ids = re.findall(r'<tr class="run [^"]*" data-run-id="([^"]+)"', page)
    assert ids == [r.run_id for r in reversed(records)][:3]
    assert "latest 3 of 5 attempts" in page
    assert load_job("churn", platform=platform).name == "churn"
