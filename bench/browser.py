"""The browser as a Cristian client: headless Chromium loads web/ from Mosquitto's
WebSockets listener and measures its offset from the site's time server from JavaScript.

    .venv/bin/python bench/browser.py [--bursts 30] [--screenshot docs/browser-kitchen.png]

A kitchen (the master half a second off the host, KMC, MIT as a fleet node) converges
first; then, once per burst of the page (every 2 s), the page's offset is compared with
the truth: the master's truth signal less the page's clock minus the host's.  Prints the
error's p50/p99, the bound's p50 and how many bursts lay within their bound; with
--screenshot, saves the page as it looks at the end.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from clocksync.sim.scenarios import percentile
from clocksync.testing.browser import headless_chromium, page_snapshot
from clocksync.testing.localbroker import WEB, WEB_PORT, LocalMosquitto, serving_web
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet

SITE = "manipal-foodie"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=30)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs, LocalMosquitto(config=serving_web(WEB)) as broker:
        fleet = Fleet(broker.url, SITE, Path(logs))
        watcher = Observer(broker.url, SITE)
        driver = headless_chromium()
        try:
            assert watcher.link.wait_until_ready(10)
            fleet.start("master", ClockSpec("lab", 0.5), "--interval", "1")
            for name, offset in (("KMC", 0.7), ("TAPMI", 0.3)):
                fleet.start("node", ClockSpec(name, offset, 40))
            fleet.start("node", ClockSpec("MIT", 0.4, -30), "--sync", "fleet")
            assert watcher.wait_for(
                lambda: (
                    len(watcher.distances_from("lab")) == 3
                    and max(watcher.distances_from("lab").values()) < 1e-4
                ),
                60,
            ), "the kitchen did not converge"
            driver.get(f"http://127.0.0.1:{broker.ports[WEB_PORT]}/index.html?site={SITE}")
            errors: list[float] = []
            bounds: list[float] = []
            seen = None
            while len(errors) < args.bursts:
                time.sleep(0.25)
                measured = page_snapshot(driver)
                if measured["offsetS"] is None or measured["atMs"] == seen:
                    continue
                seen = measured["atMs"]
                watcher.pump(0.05)
                truth = watcher.true_offsets()["lab"] - measured["clockMinusHostMs"] / 1e3
                errors.append(abs(measured["offsetS"] - truth))
                bounds.append(measured["boundS"])
            if args.screenshot:
                driver.save_screenshot(str(args.screenshot))
        finally:
            driver.quit()
            watcher.close()
            fleet.stop()
    within = sum(error <= bound for error, bound in zip(errors, bounds, strict=True))
    p50, p99 = (percentile(errors, fraction) * 1e6 for fraction in (0.5, 0.99))
    print(f"browser (Chromium, MQTT.js over ws://), {len(errors)} bursts of 8, best of each:")
    print(f"  |error| p50 {p50:.1f} µs, p99 {p99:.1f} µs")
    print(f"  bound p50 {statistics.median(bounds) * 1e6:.1f} µs; within {within}/{len(errors)}")


if __name__ == "__main__":
    main()
