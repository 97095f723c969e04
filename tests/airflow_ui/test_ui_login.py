"""The local Airflow UI as a person uses it: ``lakescore airflow`` on a free port, a real
headless Chromium (Selenium + Debian's chromedriver) that is sent to the login page, signs in
as ``admin`` with the generated password, and finds the ``score_churn`` DAG and its last run.

One Airflow (standalone, SQLite) per module, in its own process group, stopped and checked
for leftovers on teardown.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World
from tests.support.browser import Ui
from tests.support.local_airflow import (
    LocalAirflow,
    get_json,
    local_airflow,
    post_json,
    wait_for_dag,
)
from tests.support.processes import wait_until

# A safety net over the bounded waits below (signal method: fixture teardown still runs).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

DAG_ID = "score_churn"
DS = "2026-10-01"
RUN_ID = f"ui_test_{DS}"


@pytest.fixture(scope="module")
def airflow(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    """``lakescore airflow`` with the test world's config, healthy, with one run of score_churn."""
    with local_airflow(world.conf_dir, tmp_path_factory.mktemp("airflow_ui")) as airflow:
        wait_for_dag(airflow, DAG_ID)
        # One run, so the UI has a "last run" (the DAG is paused: it stays queued).
        run = post_json(
            f"{airflow.base_url}/api/v2/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": RUN_ID, "logical_date": None, "conf": {"ds": DS}},
            airflow.token,
        )
        assert (run["dag_run_id"], run["conf"]) == (RUN_ID, {"ds": DS})
        yield airflow


# --------------------------------------------------------------------------- tests


def test_cli_prints_url_and_login(airflow: LocalAirflow):
    out = airflow.log.read_text(errors="replace")
    port = airflow.base_url.rsplit(":", 1)[1]
    assert f"http://localhost:{port}" in out, airflow.log_tail()
    assert f"login admin / {airflow.password}" in out, airflow.log_tail()


def test_the_warm_driver_starts_next_to_airflow(airflow: LocalAirflow):
    """``lakescore airflow`` starts ``lakescore driver`` too (its tasks' LAKESCORE_DRIVER_URL);
    the fixture's teardown checks that it stops with Airflow (no process of the home left)."""
    line = wait_until(
        lambda: next(
            (x for x in airflow.log.read_text(errors="replace").splitlines() if "warm driver" in x),
            None,
        ),
        240,
        "the warm driver's line",
        details=airflow.log_tail,
    )
    assert "warm driver ready on http://127.0.0.1:" in line, airflow.log_tail()


def test_rest_api_refuses_anonymous_requests(airflow: LocalAirflow):
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(f"{airflow.base_url}/api/v2/dags")
    assert refused.value.code in (401, 403)
    # The same request with a token works: the refusal is about authentication.
    dags = get_json(f"{airflow.base_url}/api/v2/dags", airflow.token)
    assert DAG_ID in [d["dag_id"] for d in dags["dags"]]


def test_browser_login_finds_dag_and_its_last_run(airflow: LocalAirflow, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    ui = Ui(browser)
    wait, click, href = ui.wait, ui.click, ui.href

    body = (By.TAG_NAME, "body")

    # Not signed in: the UI sends the browser to the login form.
    browser.get(f"{airflow.base_url}/dags")
    wait.until(ec.url_contains("/auth/login"))
    wait.until(ec.text_to_be_present_in_element(body, "Sign into Airflow"))

    # A wrong password is refused and keeps the browser on the login page.
    ui.sign_in("not-the-password")
    wait.until(ec.text_to_be_present_in_element(body, "Invalid credentials"))
    assert "/auth/login" in browser.current_url

    # The generated password signs in and lands on the page asked for.
    ui.sign_in(airflow.password)
    wait.until(ec.url_to_be(f"{airflow.base_url}/dags"), "not sent on to /dags after login")

    # The DAG list shows score_churn, with its latest run linked.
    dag_link = (By.CSS_SELECTOR, f'a[data-testid="dag-id"][href="/dags/{DAG_ID}"]')
    wait.until(ec.text_to_be_present_in_element(dag_link, DAG_ID), f"{DAG_ID} not listed")
    run_path = f"/dags/{DAG_ID}/runs/{RUN_ID}"
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f'a[href="{run_path}"]')),
        f"the DAG list does not link to {run_path}",
    )

    # The DAG's page: "Latest Run" links to the run the fixture created.
    click(dag_link, DAG_ID)
    wait.until(ec.url_to_be(f"{airflow.base_url}/dags/{DAG_ID}"))
    latest = (By.XPATH, "//h2[normalize-space()='Latest Run']/following-sibling::*//a")
    assert href(latest) == f"{airflow.base_url}{run_path}"
    screenshot = tmp_path / "score_churn.png"
    assert browser.save_screenshot(str(screenshot))

    # Following it opens the run: its id, type and state are on the page.
    click(latest, "Latest Run")
    wait.until(ec.url_to_be(f"{airflow.base_url}{run_path}"))
    wait.until(ec.text_to_be_present_in_element(body, "Run Type"))
    text = browser.find_element(*body).text
    assert RUN_ID in text
    assert "Manual" in text

    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, f"screenshot is only {len(data)} bytes"


def test_ui_listens_on_loopback_only(airflow: LocalAirflow):
    import psutil

    port = int(airflow.base_url.rsplit(":", 1)[1])
    listening = [
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert listening, f"nothing listens on port {port}"
    assert set(listening) <= {"127.0.0.1", "::1"}, f"the local UI is exposed on {listening}"
