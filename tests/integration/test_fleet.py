"""Fleet rounds end to end: fleet nodes as `clocksync node --sync fleet` processes beside
polled lines, through a real Mosquitto, judged from the truth signal; and the leader
shrugs off bad asks and reports."""

import os
import random
import resource
import time

import pytest

from clocksync.core.clock import SoftwareClock
from clocksync.driver.many import Multiplexer
from clocksync.driver.runner import Driver, client_id, link_for
from clocksync.nodes.fleet import FleetNode
from clocksync.protocol.envelope import Publish
from clocksync.protocol.messages import FleetReport, RoundSummary
from clocksync.protocol.topics import Topics
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.link import MqttLink
from tests.integration.support import distance_from, start_master

LINES = ("KMC", "MIT")
FLEET = ("kiosk-1", "kiosk-2", "kiosk-3")
COUNT = 200


def start_kiosks(fleet: Fleet, observer: Observer, rng: random.Random) -> None:
    """The FLEET's fleet nodes, ±2 s and ±100 ppm off, each online."""
    for kiosk in FLEET:
        fleet.start(
            "node",
            ClockSpec(kiosk, rng.uniform(-2, 2), rng.uniform(-100, 100)),
            "--sync",
            "fleet",
            "--status-interval",
            "0.25",
        )
    assert observer.wait_for(lambda: set(FLEET) <= set(observer.statuses), 15)


def test_fleet_nodes_and_polled_lines_keep_one_time(fleet: Fleet, observer: Observer) -> None:
    rng = random.Random(20261201)
    for line in LINES:
        fleet.start("node", ClockSpec(line, rng.uniform(-2, 2), rng.uniform(-100, 100)))
    start_kiosks(fleet, observer, rng)
    start_master(fleet)
    assert observer.wait_for_rounds(12, 30), f"{len(observer.rounds)} rounds"
    observer.pump(0.6)
    last: RoundSummary = observer.rounds[-1]
    assert last.fleet_asked == len(FLEET)
    assert last.fleet_reported == len(FLEET), "a small fleet reports whole"
    assert {entry.name for entry in last.participants} == {"lab", *LINES}
    assert all(observer.statuses[kiosk].sync == "fleet" for kiosk in FLEET)
    assert all(observer.statuses[kiosk].leader == "lab" for kiosk in FLEET)
    distances = observer.distances_from("lab")
    assert set(distances) == {*LINES, *FLEET}
    assert max(distances.values()) < 1e-3, distances


def test_bad_asks_and_reports_leave_the_rounds_and_the_clocks_alone(
    fleet: Fleet, observer: Observer
) -> None:
    topics = Topics(fleet.site)
    fleet.start("node", ClockSpec("kiosk-1", 0.3, 0.0), "--sync", "fleet")
    start_master(fleet)
    assert observer.wait_for_rounds(4, 20)
    attacker = MqttLink(fleet.broker, "attacker")
    assert attacker.wait_until_ready(10)
    latest = observer.rounds[-1]
    for round_ in range(latest.round + 1, latest.round + 30):
        # An hour off, for rounds to come: the average leaves it out.
        forged = FleetReport("kiosk-9", latest.epoch, round_, 3600.0, 1e-4).encode()
        for payload in (b"{", b"x" * 70_000, b'{"v": 1, "type": "time-request"}', forged):
            attacker.publish(Publish(topics.fleet_ask("lab", "kiosk-9"), payload))
            attacker.publish(Publish(topics.fleet_report("kiosk-9"), payload))
        attacker.publish(Publish(topics.fleet_report("kiosk-1"), forged))  # another's name
    attacker.poll(0.2)
    attacker.close()
    seen = len(observer.rounds)
    assert observer.wait_for_rounds(seen + 4, 20), "the rounds go on"
    observer.pump(0.3)
    assert all(abs(summary.average_s) < 0.01 for summary in observer.rounds[seen:])
    assert observer.distances_from("lab")["kiosk-1"] < 1e-3
    assert fleet.processes["lab"].poll() is None, "the master is alive"


@pytest.fixture
def descriptors() -> None:
    """Room for 1,100 spare descriptors and the links beyond them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2048:
        pytest.skip("the host allows fewer than 2,048 file descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))


@pytest.mark.usefixtures("descriptors")
def test_two_hundred_fleet_nodes_on_one_thread_keep_the_leaders_time(
    fleet: Fleet, observer: Observer
) -> None:
    """Many links on one thread (clocksync.driver.many): every node connects, asks and is
    corrected each round; past 1,024 descriptors too, which select() could not wait on."""
    nodes = [
        FleetNode(
            name=f"kiosk-{index}",
            site=fleet.site,
            clock=SoftwareClock(offset_s=0.2 * (index % 7 - 3)),
            status_interval_s=5.0,
            rng=random.Random(index),
        )
        for index in range(COUNT)
    ]
    padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    drivers = [
        Driver(node, link_for(node, fleet.broker, client_id(fleet.site, node.name)))
        for node in nodes
    ]
    multiplexer = Multiplexer(drivers, connect_per_s=400)
    try:
        deadline = time.monotonic() + 20
        while not all(d.link.ready for d in drivers) and time.monotonic() < deadline:
            multiplexer.step(0.05)
        assert all(d.link.ready for d in drivers)
        assert min(d.link.fileno() or 0 for d in drivers) > 1024
        start_master(fleet)
        deadline = time.monotonic() + 40
        while min(node.corrected for node in nodes) < 8 and time.monotonic() < deadline:
            multiplexer.step(0.05)
            observer.pump(0.0)
        observer.pump(0.3)
        truths = [node.clock.host_offset_ns()[0] / 1e9 for node in nodes]
        bounds = [node.error_bound_s() for node in nodes]
    finally:
        for driver in drivers:
            driver.close()
        for descriptor in padding:
            os.close(descriptor)
    assert min(node.corrected for node in nodes) >= 8
    assert any(summary.fleet_asked == COUNT for summary in observer.rounds)
    # One exchange a round over a loaded machine can be a millisecond or two off; each
    # node's own bound must say so.  The master's status is up to a round old: its clock,
    # without drift, moves by microseconds meanwhile.
    master = observer.true_offsets()["lab"]
    for truth, bound in zip(truths, bounds, strict=True):
        assert bound is not None
        assert abs(truth - master) <= bound + 0.3e-3, (truth - master, bound)
    assert max(truths) - min(truths) < 5e-3, "the fleet agrees, read at one instant"


def test_a_standby_master_answers_the_fleet_for_the_leader(
    fleet: Fleet, observer: Observer
) -> None:
    rng = random.Random(20261202)
    start_kiosks(fleet, observer, rng)
    start_master(fleet, "--priority", "1", offset_s=0.4, drift_ppm=-60.0)
    fleet.start("master", ClockSpec("lab-2", -0.7, 80.0), "--interval", "0.5")

    def standby_answers() -> bool:
        return len(observer.rounds) > 4 and observer.rounds[-1].fleet_asked == 0

    assert observer.wait_for(standby_answers, 40), [s.fleet_asked for s in observer.rounds]
    updates = {kiosk: observer.statuses[kiosk].updates for kiosk in FLEET}
    seen = len(observer.rounds)

    def corrected_again() -> bool:
        return all(observer.statuses[kiosk].updates >= updates[kiosk] + 5 for kiosk in FLEET)

    assert observer.wait_for(corrected_again, 30), "every kiosk taken five more results in"
    observer.pump(0.6)
    later = observer.rounds[seen:]
    assert all(summary.master == "lab" for summary in later)
    assert all(summary.fleet_asked == 0 for summary in later), "the leader answers none"
    reported = [summary.fleet_reported for summary in later[:-1]]
    assert reported.count(len(FLEET)) >= len(reported) / 2, reported
    for kiosk in FLEET:
        status = observer.statuses[kiosk]
        assert status.error_bound_s is not None
        assert status.host_offset_s is not None
        assert status.host_time is not None
        error = distance_from(observer, "lab", status.host_offset_s, status.host_time)
        assert error <= status.error_bound_s + 20e-6, (kiosk, error, status.error_bound_s)
        assert error < 2e-3, (kiosk, error)
