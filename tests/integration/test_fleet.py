"""Fleet rounds end to end: fleet nodes as `clocksync node --sync fleet` processes beside
polled lines, through a real Mosquitto, judged from the truth signal; and the leader
shrugs off bad asks and reports."""

import random

from clocksync.protocol.envelope import Publish
from clocksync.protocol.messages import FleetReport, RoundSummary
from clocksync.protocol.topics import Topics
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.link import MqttLink
from tests.integration.support import start_master

LINES = ("KMC", "MIT")
FLEET = ("kiosk-1", "kiosk-2", "kiosk-3")


def test_fleet_nodes_and_polled_lines_keep_one_time(fleet: Fleet, observer: Observer) -> None:
    rng = random.Random(20261201)
    for line in LINES:
        fleet.start("node", ClockSpec(line, rng.uniform(-2, 2), rng.uniform(-100, 100)))
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
