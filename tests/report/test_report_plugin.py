"""The report inside Airflow: ``lakescore airflow`` (standalone, SQLite) with the lakescore
plugins loaded, against a conf tree and lineage/metrics tables of this module's own.

* anonymous requests (no token, a forged token, a forged cookie) to the plugin's app are refused;
* a person signs in through the real login page in headless Chromium, opens the report URL and
  sees the charts, finds "Scoring reports" in the UI's navigation, and follows it to the job's
  report inside the UI's plugin page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakescore.config import load_platform
from tests.conftest import REPO
from tests.report.conftest import make_conf, seed_history
from tests.support.browser import Ui, assert_not_blank, full_page_screenshot
from tests.support.local_airflow import LocalAirflow, local_airflow

PLUGIN = REPO / "plugins" / "lakescore_airflow" / "report_plugin.py"
REPORT_PATH = "/lakescore/reports/churn"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# --------------------------------------------------------------------------- without a server


def test_plugin_import_is_light_and_its_entries_are_what_airflow_expects():
    # Every Airflow process imports the plugins folder: the report stack must not come along.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import report_plugin as p; "
        "heavy = [m for m in ('fastapi', 'pyarrow', 'deltalake', 'pyspark', 'lakescore.reporting.report', 'lakescore.reporting.page', "
        "'airflow.api_fastapi.core_api.security') if m in sys.modules]; "
        "print(p.LakescoreReportsPlugin.name, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(PLUGIN.parent)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "lakescore_reports []", out.stdout

    # The entries validate against the API server's own response models (the keys are real).
    from airflow.api_fastapi.core_api.datamodels.plugins import (
        ExternalViewResponse,
        FastAPIAppResponse,
    )
    from lakescore_airflow.report_plugin import LakescoreReportsPlugin

    (view,) = LakescoreReportsPlugin.external_views
    parsed = ExternalViewResponse.model_validate(view)
    assert (parsed.destination, parsed.url_route, parsed.nav_top_level) == (
        "nav",
        "lakescore-reports",
        True,
    )
    assert not parsed.href.startswith("/"), "href is relative to the UI's base URL"
    (app,) = LakescoreReportsPlugin.fastapi_apps
    FastAPIAppResponse.model_validate({**app, "app": type(app["app"]).__name__})
    assert app["url_prefix"] == "/lakescore"


# --------------------------------------------------------------------------- a real Airflow


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    """``lakescore airflow`` on a conf tree whose lineage/metrics tables hold 3 published days
    and one failed attempt of job churn."""
    root = tmp_path_factory.mktemp("report_ui")
    conf = make_conf(root, description="Churn propensity, scored daily.")
    seed_history(load_platform(conf))
    with local_airflow(conf, root) as airflow:
        yield airflow


@pytest.mark.integration
@pytest.mark.timeout(480)
def test_reports_refuse_requests_without_a_valid_airflow_login(airflow: LocalAirflow):
    base = airflow.base_url
    for path in (REPORT_PATH, "/lakescore/reports", "/lakescore/reports/churn/files/x.html"):
        status, body = _get(base + path)
        assert status in (401, 403), (path, status, body[:300])
        assert "score-histogram" not in body
    forged = {"Authorization": "Bearer not-a-real-token"}
    assert _get(base + REPORT_PATH, forged)[0] in (401, 403)
    assert _get(base + REPORT_PATH, {"Cookie": "_token=forged"})[0] in (401, 403)

    # The same request with Airflow's JWT is served: the refusal was about authentication.
    status, body = _get(base + REPORT_PATH, {"Authorization": f"Bearer {airflow.token}"})
    assert status == 200, body[:500]
    assert '<svg id="score-histogram"' in body and 'id="runs"' in body
    status, body = _get(base + "/lakescore/reports", {"Authorization": f"Bearer {airflow.token}"})
    assert status == 200 and 'href="/lakescore/reports/churn"' in body, body[:500]
    status, body = _get(
        base + "/lakescore/reports/nope", {"Authorization": f"Bearer {airflow.token}"}
    )
    assert status == 404 and "unknown job" in body

    # The validation report a run links to is served from <reports_root>/<job>/, nothing else.
    auth = {"Authorization": f"Bearer {airflow.token}"}
    page = _get(base + REPORT_PATH, auth)[1]
    (href,) = re.findall(r'<a class="report-link" href="([^"]+)"', page)
    assert href.startswith("/lakescore/reports/churn/files/2026-11-18/"), href
    assert _get(base + href)[0] in (401, 403)
    status, body = _get(base + href, auth)
    assert status == 200 and "seeded" in body, (status, body[:300])
    # files that exist outside it: <root>/conf/platform.yaml (3 levels up) and /etc/passwd
    for escape, secret in (
        ("..%2F..%2F..%2Fconf%2Fplatform.yaml", "warehouse:"),
        ("%2Fetc%2Fpasswd", "root:"),
    ):
        status, body = _get(f"{base}/lakescore/reports/churn/files/{escape}", auth)
        assert status == 404 and secret not in body, (escape, status, body[:200])


@pytest.mark.integration
@pytest.mark.timeout(480)
def test_signed_in_user_sees_the_report_and_finds_it_in_the_ui(
    airflow: LocalAirflow, browser: Any, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    ui = Ui(browser)
    wait, click = ui.wait, ui.click
    body = (By.TAG_NAME, "body")

    # Not signed in: the browser gets Airflow's refusal, not the report.
    browser.get(airflow.base_url + REPORT_PATH)
    wait.until(ec.text_to_be_present_in_element(body, "Not authenticated"))
    assert not browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram")

    # Sign in through the UI's login page.
    browser.get(f"{airflow.base_url}/dags")
    wait.until(ec.url_contains("/auth/login"))
    ui.sign_in(airflow.password)
    wait.until(ec.url_to_be(f"{airflow.base_url}/dags"), "not sent on to /dags after login")

    # The nav entry of the plugin is in the UI and leads to the plugin page.
    nav = (By.CSS_SELECTOR, '[aria-label="Scoring reports"]')
    link = wait.until(ec.presence_of_element_located(nav), "no 'Scoring reports' in the nav")
    href = link.get_attribute("href") or link.find_element(By.XPATH, ".//a").get_attribute("href")
    assert href.endswith("/plugin/lakescore-reports"), href
    click(nav, "Scoring reports")
    wait.until(ec.url_contains("/plugin/lakescore-reports"))
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    assert frame.get_attribute("title") == "Scoring reports"
    browser.switch_to.frame(frame)
    jobs_link = (By.CSS_SELECTOR, 'table#jobs a[href="/lakescore/reports/churn"]')
    wait.until(ec.presence_of_element_located(jobs_link), "the index inside the UI lists no churn")
    click(jobs_link, "churn in the index")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg#score-histogram")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram rect.bar")) == 10
    browser.switch_to.default_content()
    in_ui = full_page_screenshot(browser, tmp_path / "report-in-airflow-ui.png")
    assert_not_blank(in_ui)

    # The report URL itself, signed in: the charts and the runs of the seeded history.
    browser.get(airflow.base_url + REPORT_PATH)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg#score-histogram")))
    bars = browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram rect.bar")
    assert len(bars) == 10 and sum(b.rect["height"] for b in bars) > 20
    assert browser.find_elements(By.CSS_SELECTOR, "svg#score-histogram path.baseline")
    days = {
        p.get_attribute("data-ds")
        for p in browser.find_elements(By.CSS_SELECTOR, "svg#psi-over-time circle.psi-point")
    }
    assert days == {"2026-11-18", "2026-11-19", "2026-11-20"}
    statuses = [
        r.get_attribute("data-status")
        for r in browser.find_elements(By.CSS_SELECTOR, "table#runs tbody tr.run")
    ]
    assert statuses == ["failed", "succeeded", "succeeded", "succeeded"]
    failed = browser.find_element(By.CSS_SELECTOR, "tr.run.bad")
    assert failed.find_element(By.CSS_SELECTOR, "td.error").text == "BadInputError"
    error = browser.find_element(By.CSS_SELECTOR, "tr.run-error").text
    assert "partition ds=2026-11-20 not found" in error
    assert_not_blank(full_page_screenshot(browser, tmp_path / "report-via-airflow.png"))
