"""The kitchen in a real browser: headless Chromium (from apt, driven by Selenium) loads
web/ from Mosquitto's own WebSockets listener (http_dir), connects over MQTT WebSockets,
shows every clock ticking in the site's time, and measures its own offset from the site's
time server from JavaScript, within its bound of the truth."""

import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from selenium import webdriver

from clocksync.testing.browser import (
    chromium_missing,
    console_errors,
    headless_chromium,
    page_snapshot,
)
from clocksync.testing.localbroker import WEB, WEB_PORT, LocalMosquitto, serving_web
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet


@pytest.fixture
def web_broker() -> Iterator[LocalMosquitto]:
    with LocalMosquitto(config=serving_web(WEB)) as broker:
        yield broker


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = chromium_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run installs them")
        pytest.skip(missing)
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


snapshot = page_snapshot


def truth_known(watcher: Observer, host_ns: int) -> bool:
    """Whether the master's truth signal brackets `host_ns` yet."""
    return watcher.offset_at("lab", host_ns) is not None


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_the_kitchen_in_a_browser(
    web_broker: LocalMosquitto, browser: webdriver.Chrome, site: str, tmp_path: Path
) -> None:
    fleet = Fleet(web_broker.url, site, tmp_path)
    watcher = Observer(web_broker.url, site, keep_history=True)
    try:
        assert watcher.link.wait_until_ready(10)
        fleet.start("master", ClockSpec("lab", 0.5), "--interval", "0.5")
        fleet.start("node", ClockSpec("KMC", 0.55))
        fleet.start("node", ClockSpec("MIT", 0.45), "--sync", "fleet")

        def converged() -> bool:
            distances = watcher.distances_from("lab")
            return set(distances) == {"KMC", "MIT"} and max(distances.values()) < 1e-3

        assert watcher.wait_for(converged, 30), watcher.distances_from("lab")
        page = f"http://127.0.0.1:{web_broker.ports[WEB_PORT]}/index.html?site={site}"
        browser.get(page)
        assert wait_for(lambda: snapshot(browser)["samples"] >= 4, 20), snapshot(browser)
        assert wait_for(lambda: set(snapshot(browser)["clocks"]) == {"lab", "KMC", "MIT"}, 10)

        before = snapshot(browser)["clocks"]
        time.sleep(0.3)
        after = snapshot(browser)["clocks"]
        for name, shown in after.items():
            assert shown != "--:--:--.---", f"{name}'s clock shows no time"
            assert shown != before[name], f"{name}'s clock does not tick"

        # Against the truth: the master's clock minus the host's when the page measured it
        # (the master may still be slewing), less the page's clock minus the host's (read
        # to performance.now()'s coarsening, 0.1 ms).
        checked = 0
        while checked < 3:
            measured = snapshot(browser)
            at_host_ns = round((measured["atMs"] - measured["clockMinusHostMs"]) * 1e6)
            assert watcher.wait_for(partial(truth_known, watcher, at_host_ns), 5)
            lab = watcher.offset_at("lab", at_host_ns)
            assert lab is not None
            truth = lab - measured["clockMinusHostMs"] / 1e3
            error = abs(measured["offsetS"] - truth)
            assert measured["server"] == "lab"
            assert error <= measured["boundS"] + 0.2e-3, (error, measured)
            checked += 1
            time.sleep(2.1)  # the next burst
        browser.save_screenshot(str(tmp_path / "kitchen.png"))
        assert console_errors(browser) == []
    finally:
        watcher.close()
        fleet.stop()
