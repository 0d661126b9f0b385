"""The site's time outside clocksync's own processes, through a real Mosquitto: `clocksync
now`, the monitor's snapshot, an application embedding a participant (clocksync.embed.SiteClock),
and chronyd taking a participant as its reference clock.  The master's clock is half a
second off the host's, so each reading is judged against the master's truth signal."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.embed import SiteClock
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.url import BrokerUrl
from tests.integration.support import distance_from, run_cli, start_master, wait_for_status

MASTER_OFFSET_S = 0.5


@pytest.fixture
def kitchen(fleet: Fleet, observer: Observer) -> Fleet:
    """The lab's master half a second off the host, and KMC, polled, converged: the master
    no longer slews its own share of the first average in (its status, once a second,
    would lag its clock by as much as it slews meanwhile)."""
    start_master(fleet, offset_s=MASTER_OFFSET_S)
    fleet.start("node", ClockSpec("KMC", MASTER_OFFSET_S + 0.05))
    converge(observer, {"KMC"})
    return fleet


def converge(observer: Observer, names: set[str]) -> None:
    def converged() -> bool:
        distances = observer.distances_from("lab")
        return names <= set(distances) and max(distances.values()) < 1e-3

    assert observer.wait_for(converged, 30), observer.distances_from("lab")


def master_truth(observer: Observer) -> float:
    observer.pump(0.2)
    return observer.true_offsets()["lab"]


def test_now_prints_the_sites_time_within_its_bound(kitchen: Fleet, observer: Observer) -> None:
    printed = run_cli("now", "--broker", str(kitchen.broker), "--site", kitchen.site, "--json")
    assert printed.returncode == 0, printed.stderr
    now = json.loads(printed.stdout)
    offset = now["offset_from_host_s"]
    at_host = now["site_time_ns"] - round(offset * 1e9)
    error = distance_from(observer, "lab", offset, at_host)
    assert error <= now["error_bound_s"] + 20e-6, (error, now)
    assert now["server"] == "lab"
    assert abs(now["site_time_ns"] / 1e9 - time.time() - MASTER_OFFSET_S) < 1.0
    plain = run_cli("now", "--broker", str(kitchen.broker), "--site", kitchen.site)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(time.strftime("%Y-"))
    assert "±" in plain.stdout


def test_now_without_a_time_server_fails_and_says_why(broker: BrokerUrl, site: str) -> None:
    printed = run_cli("now", "--broker", str(broker), "--site", site, "--timeout", "0.2")
    assert printed.returncode == 1
    assert "no answer from a time server" in printed.stderr


def test_the_monitors_snapshot_shows_every_participant(kitchen: Fleet, observer: Observer) -> None:
    kitchen.start("node", ClockSpec("MIT", 0.2), "--sync", "fleet")
    converge(observer, {"KMC", "MIT"})
    printed = run_cli(
        "monitor", "--broker", str(kitchen.broker), "--site", kitchen.site, "--once", "--json",
        "--wait", "2.5",
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    snapshot = json.loads(printed.stdout)
    assert snapshot["leader"] == "lab"
    assert snapshot["rounds_per_minute"] == pytest.approx(120, rel=0.3), "rounds every 0.5 s"
    rows = {row["name"]: row for row in snapshot["participants"]}
    assert set(rows) == {"lab", "KMC", "MIT"}
    assert rows["KMC"]["excluded"] is False
    assert rows["KMC"]["delay_s"] > 0
    assert rows["MIT"]["sync"] == "fleet"
    assert all(row["state"] == "online" for row in rows.values())
    assert all(abs(row["true_offset_from_leader_s"]) < 1e-3 for row in rows.values()), rows
    table = run_cli("monitor", "--broker", str(kitchen.broker), "--site", kitchen.site,
                    "--once", "--wait", "1")  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert all(name in table.stdout for name in rows)


@pytest.mark.parametrize("sync", ["fleet", "cristian"])
def test_an_application_reads_the_sites_time_from_an_embedded_participant(
    kitchen: Fleet, observer: Observer, sync: str
) -> None:
    with SiteClock(
        str(kitchen.broker),
        site=kitchen.site,
        name=f"orders-{sync}",
        sync=sync,  # type: ignore[arg-type]
    ) as clock:
        assert clock.wait_synchronized(15), "never synchronized"
        observer.wait_for(lambda: clock.error_bound_s is not None, 5)
        readings = []
        for _ in range(20):
            readings.append(clock.time_ns())
            time.sleep(0.05)
        at_host, offset, bound = time.time_ns(), clock.offset_from_host_s(), clock.error_bound_s
        assert bound is not None
        error = distance_from(observer, "lab", offset, at_host)
        assert error <= bound + 20e-6, (error, bound)
        assert error < 2e-3
        assert readings == sorted(readings), "the site's time never runs backwards"
        assert abs(clock.now().timestamp() - time.time() - master_truth(observer)) < 0.01
        wait_for_status(observer, f"orders-{sync}")
    observer.pump(0.5)
    assert observer.statuses[f"orders-{sync}"].state == "offline", "it said goodbye"


# noselect: with -x, chronyd would otherwise "correct" a virtual clock once it selects the
# source, and show only what is left of the offset.
CHRONY_CONF = """\
refclock SOCK {folder}/clocksync.sock refid CSYN poll 0 noselect
cmdport 0
port 0
bindcmdaddress {folder}/chronyd.sock
pidfile {folder}/chronyd.pid
driftfile {folder}/drift
"""


@pytest.fixture
def chronyd() -> Iterator[Path]:
    """A chronyd of its own (`-x`: it never touches the system clock), with a SOCK refclock
    and its command socket in a private folder; stopped after the test."""
    binary = shutil.which("chronyd") or "/usr/sbin/chronyd"
    if not os.path.exists(binary):
        if os.environ.get("CI"):
            pytest.fail("chronyd is missing: .ci/run installs chrony")
        pytest.skip("chronyd is not installed (apt-get install chrony)")
    with tempfile.TemporaryDirectory(prefix="clocksync-chrony-") as name:
        folder = Path(name)  # chronyd wants its socket's folder closed to others: 0700 here
        (folder / "chrony.conf").write_text(CHRONY_CONF.format(folder=folder))
        log = folder / "chronyd.log"
        with log.open("wb") as output:
            daemon = subprocess.Popen(
                [binary, "-x", "-d", "-u", "root", "-f", str(folder / "chrony.conf")],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 10
            while not (folder / "clocksync.sock").exists():
                assert daemon.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "chronyd made no refclock socket"
                time.sleep(0.05)
            yield folder
        finally:
            daemon.terminate()
            daemon.wait(10)


def chrony_source(folder: Path) -> list[str] | None:
    """chronyc's CSV row for the clocksync refclock (mode, state, name, stratum, poll,
    reach, last rx, adjusted offset, measured offset, error), or None."""
    listed = subprocess.run(
        ["chronyc", "-h", str(folder / "chronyd.sock"), "-c", "sources"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    rows = [line.split(",") for line in listed.stdout.splitlines()]
    return next((row for row in rows if row[2] == "CSYN"), None)


def test_chronyd_takes_a_participant_as_its_reference_clock(
    kitchen: Fleet, observer: Observer, chronyd: Path
) -> None:
    kitchen.start("node", ClockSpec("MIT", -0.2), "--chrony-sock", str(chronyd / "clocksync.sock"))
    wait_for_status(observer, "MIT")
    deadline = time.monotonic() + 20
    row = chrony_source(chronyd)
    while (row is None or int(row[5], 8) < 0o7) and time.monotonic() < deadline:
        time.sleep(0.5)
        row = chrony_source(chronyd)
    assert row is not None, "chronyc sources does not list the clocksync refclock"
    assert int(row[5], 8) >= 0o7, f"three samples reached chronyd: reach {row[5]}"
    # chronyc's offset is the host's clock from the source's: minus the site's from the host.
    site_from_host = master_truth(observer)
    assert abs(float(row[8]) + site_from_host) < 1e-3, (row, site_from_host)
