"""The local Airflow UI as a person uses it: ``lakescore airflow`` on a free port, a real
headless Chromium (Selenium + Debian's chromedriver) that is sent to the login page, signs in
as ``admin`` with the generated password, and finds the ``score_churn`` DAG and its last run.

One Airflow (standalone, SQLite) per module, in its own process group, stopped and checked
for leftovers on teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from lakescore.airflow_local import admin_password
from tests.conftest import World

# A safety net over the bounded waits below (signal method: fixture teardown still runs).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DAG_ID = "score_churn"
DS = "2026-10-01"
RUN_ID = f"ui_test_{DS}"
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20
UI_TIMEOUT_S = 30


@dataclass
class LocalAirflow:
    base_url: str
    home: Path
    log: Path
    password: str
    token: str

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


# --------------------------------------------------------------------------- helpers


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports that are free now (all held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _get_json(url: str, token: str | None = None, timeout: float = 5) -> object:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _post_json(url: str, body: dict, token: str | None = None, timeout: float = 10) -> object:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _healthy(base_url: str) -> bool:
    try:
        health = _get_json(f"{base_url}/api/v2/monitor/health", timeout=2)
    except (OSError, ValueError):
        return False
    components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(c) or {}).get("status") == "healthy" for c in components)


def _deployment_processes(home: Path) -> list[psutil.Process]:
    """Every live process started for the Airflow rooted at ``home``: all of them carry
    ``AIRFLOW_HOME=<home>`` (set by airflow_env), whatever process group they are in."""
    marker = str(home)
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get("AIRFLOW_HOME") == marker:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_groups(pgids: set[int], sig: signal.Signals) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)


def _stop(process: subprocess.Popen, home: Path) -> list[str]:
    """SIGTERM the CLI's process group and every group holding a process of this deployment,
    SIGKILL what is left after STOP_TIMEOUT_S; returns a description of the survivors."""
    groups = {process.pid}
    for child in _deployment_processes(home):
        try:
            groups.add(os.getpgid(child.pid))
        except ProcessLookupError:
            continue

    def left() -> list[str]:
        alive = [f"pgid {g}" for g in sorted(groups) if _group_alive(g)]
        for child in _deployment_processes(home):
            try:
                alive.append(f"pid {child.pid} {' '.join(child.cmdline())[:120]}")
            except psutil.Error:
                continue
        return alive

    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10)):
        _signal_groups(groups, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is None:  # reap our own child so it does not stay a zombie
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.5)
            if not left():
                return []
            time.sleep(0.5)
    return left()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def airflow(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    """``lakescore airflow`` with the test world's config, healthy, with one run of score_churn."""
    root = tmp_path_factory.mktemp("airflow_ui")
    home = (root / "home").resolve()
    log = root / "lakescore_airflow.log"
    port, worker_logs_port, trigger_logs_port = _free_ports(3)
    base_url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "lakescore"), "--conf", str(world.conf_dir), "airflow"]
    command += ["--home", str(home), "--port", str(port)]
    env = {
        **os.environ,
        "LAKESCORE_CONF": str(world.conf_dir),
        "AIRFLOW_HOME": str(home),
        # The log servers' fixed default ports (8793/8794) clash with any other local Airflow.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs_port),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(base_url):
            assert process.poll() is None, (
                f"lakescore airflow exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
            assert time.monotonic() < deadline, (
                f"Airflow not healthy after {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}"
            )
            time.sleep(0.5)

        password = admin_password(home)
        assert password, f"no generated admin password in {home}"
        login = {"username": "admin", "password": password}
        token = _post_json(f"{base_url}/auth/token", login)["access_token"]
        # Healthy is not parsed: wait until the DAG processor has stored the DAG.
        while True:
            try:
                _get_json(f"{base_url}/api/v2/dags/{DAG_ID}", token)
                break
            except urllib.error.HTTPError as exc:
                assert exc.code == 404, exc
                if time.monotonic() > deadline:
                    errors = _get_json(f"{base_url}/api/v2/importErrors", token)
                    pytest.fail(f"{DAG_ID} not parsed after {START_TIMEOUT_S}s: {errors}")
                time.sleep(0.5)

        # One run, so the UI has a "last run" (the DAG is paused: it stays queued).
        run = _post_json(
            f"{base_url}/api/v2/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": RUN_ID, "logical_date": None, "conf": {"ds": DS}},
            token,
        )
        assert (run["dag_run_id"], run["conf"]) == (RUN_ID, {"ds": DS})

        yield LocalAirflow(base_url, home, log, password, token)
    finally:
        survivors = _stop(process, home)
        assert not survivors, f"processes of the local Airflow left after teardown: {survivors}"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium through Debian's chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.is_file(), f"{binary} missing: `make system-deps` installs it"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            yield driver
        finally:
            driver.quit()


# --------------------------------------------------------------------------- tests


def test_cli_prints_url_and_login(airflow: LocalAirflow):
    out = airflow.log.read_text(errors="replace")
    port = airflow.base_url.rsplit(":", 1)[1]
    assert f"http://localhost:{port}" in out, airflow.log_tail()
    assert f"login admin / {airflow.password}" in out, airflow.log_tail()


def test_rest_api_refuses_anonymous_requests(airflow: LocalAirflow):
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get_json(f"{airflow.base_url}/api/v2/dags")
    assert refused.value.code in (401, 403)
    # The same request with a token works: the refusal is about authentication.
    dags = _get_json(f"{airflow.base_url}/api/v2/dags", airflow.token)
    assert DAG_ID in [d["dag_id"] for d in dags["dags"]]


def test_browser_login_finds_dag_and_its_last_run(airflow: LocalAirflow, browser, tmp_path: Path):
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # React re-renders under our feet: every step finds its element afresh and is retried
    # (within UI_TIMEOUT_S) when the element went stale or was not there yet.
    wait = WebDriverWait(
        browser,
        UI_TIMEOUT_S,
        ignored_exceptions=(
            NoSuchElementException,
            StaleElementReferenceException,
            ElementClickInterceptedException,
        ),
    )

    def type_into(name: str, text: str) -> None:
        def attempt(driver) -> bool:
            # Real key strokes (select all, type over it) so React's controlled input sees them.
            field = driver.find_element(By.NAME, name)
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(Keys.DELETE, text)
            return field.get_attribute("value") == text

        wait.until(attempt, f"could not type into the {name} field")

    def click(locator: tuple[str, str], what: str) -> None:
        def attempt(driver) -> bool:
            element = driver.find_element(*locator)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            element.click()
            return True

        wait.until(attempt, f"could not click {what}")

    def href(locator: tuple[str, str]) -> str:
        return wait.until(lambda driver: driver.find_element(*locator).get_attribute("href"))

    def sign_in(password: str) -> None:
        type_into("username", "admin")
        type_into("password", password)
        click((By.CSS_SELECTOR, "form button[type=submit]"), "Sign in")

    body = (By.TAG_NAME, "body")

    # Not signed in: the UI sends the browser to the login form.
    browser.get(f"{airflow.base_url}/dags")
    wait.until(ec.url_contains("/auth/login"))
    wait.until(ec.text_to_be_present_in_element(body, "Sign into Airflow"))

    # A wrong password is refused and keeps the browser on the login page.
    sign_in("not-the-password")
    wait.until(ec.text_to_be_present_in_element(body, "Invalid credentials"))
    assert "/auth/login" in browser.current_url

    # The generated password signs in and lands on the page asked for.
    sign_in(airflow.password)
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
