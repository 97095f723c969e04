"""Headless Chromium (Debian's chromium + chromedriver through Selenium) and the few UI moves
the tests make on Airflow's React UI, each retried until the page has settled."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
UI_TIMEOUT_S = 30


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A WebDriver on a fresh profile, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.is_file(), f"{binary} missing: `make system-deps` installs it"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
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


class Ui:
    """React re-renders under our feet: every move finds its element afresh and is retried
    (within ``UI_TIMEOUT_S``) when the element went stale or was not there yet."""

    def __init__(self, driver: Any) -> None:
        from selenium.common.exceptions import (
            ElementClickInterceptedException,
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(
            driver,
            UI_TIMEOUT_S,
            ignored_exceptions=(
                NoSuchElementException,
                StaleElementReferenceException,
                ElementClickInterceptedException,
            ),
        )

    def type_into(self, name: str, text: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        def attempt(driver: Any) -> bool:
            # Real key strokes (select all, type over it) so React's controlled input sees them.
            field = driver.find_element(By.NAME, name)
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(Keys.DELETE, text)
            return field.get_attribute("value") == text

        self.wait.until(attempt, f"could not type into the {name} field")

    def click(self, locator: tuple[str, str], what: str) -> None:
        def attempt(driver: Any) -> bool:
            element = driver.find_element(*locator)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            element.click()
            return True

        self.wait.until(attempt, f"could not click {what}")

    def href(self, locator: tuple[str, str]) -> str:
        return self.wait.until(lambda driver: driver.find_element(*locator).get_attribute("href"))

    def sign_in(self, password: str, user: str = "admin") -> None:
        """Fill Airflow's login form (the browser must be on it) and submit."""
        from selenium.webdriver.common.by import By

        self.type_into("username", user)
        self.type_into("password", password)
        self.click((By.CSS_SELECTOR, "form button[type=submit]"), "Sign in")


def full_page_screenshot(driver: Any, path: Path) -> Path:
    """The whole page (window stretched to the document height), as PNG."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 140, 6000))
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path


def assert_not_blank(png: Path) -> None:
    """A real picture: PNG, many colours and a visible spread of brightness."""
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{png} is not a PNG"
    from PIL import Image, ImageStat  # Pillow is in the locked env (mlflow needs it)

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        spread = ImageStat.Stat(rgb.convert("L")).stddev[0]
        colours = rgb.getcolors(maxcolors=1 << 22) or []
    assert spread > 15, f"screenshot looks blank (brightness stddev {spread:.1f})"
    assert len(colours) > 200, f"screenshot has only {len(colours)} colours"
