"""Headless Chromium driven by Selenium, for the browser test and benchmark: Debian's
Chromium and its WebDriver (apt: chromium, chromium-driver), and what the page (web/)
reports of itself."""

import os
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium_missing() -> str | None:
    """Why headless Chromium cannot run here, or None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    return (
        f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if missing
        else None
    )


def headless_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1200,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def page_snapshot(driver: webdriver.Chrome) -> dict[str, Any]:
    """window.clocksync.snapshot(): the page's offset and bound, its clocks as shown, and
    its own clock minus the host's."""
    found: dict[str, Any] = driver.execute_script("return window.clocksync.snapshot()")
    return found


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The page's severe console entries so far, but for the missing favicon."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        entry["message"]
        for entry in entries
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]
