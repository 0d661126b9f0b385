"""A site spread over two bridged Mosquittos (broker/bridge.conf): the lines on their
building's broker, the master and the bank's time server on the main one."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.testing.localbroker import bridged_to
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.url import BrokerUrl
from tests.integration.support import run_cli, start_master

BRIDGE_CONF = Path(__file__).resolve().parents[2] / "broker" / "bridge.conf"


@pytest.fixture
def building(broker: BrokerUrl) -> Iterator[BrokerUrl]:
    """A second broker bridged, as broker/bridge.conf says, to the test's broker."""
    with bridged_to(broker, BRIDGE_CONF.read_text()) as second:
        yield second.url


def test_lines_behind_a_bridge_follow_the_master(
    fleet: Fleet, observer: Observer, building: BrokerUrl
) -> None:
    for index, name in enumerate(("KMC", "MIT")):
        line = ClockSpec(name, 0.5 - index, 60.0 - 120.0 * index)
        fleet.start("node", line, "--status-interval", "0.1", broker=building)
    start_master(fleet, "--status-interval", "0.1")
    assert observer.wait_for_rounds(10, 30)
    observer.pump(0.5)
    distances = observer.distances_from("lab")
    assert set(distances) == {"KMC", "MIT"}
    assert max(distances.values()) < 0.001
    assert {p.name for p in observer.rounds[-1].participants} == {"lab", "KMC", "MIT"}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_device_behind_a_bridge_asks_the_banks_server(
    fleet: Fleet, observer: Observer, building: BrokerUrl, site: str, protocol: str
) -> None:
    fleet.start("timeserver", ClockSpec("bank", 0.25))
    assert observer.wait_for(lambda: "bank" in observer.true_offsets(), 10)
    answer = run_cli(
        "ask", "--broker", str(building), "--site", site, "--name", "phone", "--json",
        "--protocol", protocol,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    report = json.loads(answer.stdout)
    assert report["server"] == "bank"
    assert abs(report["offset_s"] - 0.25) <= report["error_bound_s"]
