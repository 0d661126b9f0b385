"""Berkeley end to end, as wiring: a master and nodes as separate processes on a real
Mosquitto.  The roles' decisions are tested in-process (tests/unit) and on the simulator
(tests/sim); here, that they reach each other through a real broker, with real timestamps,
Last Wills and reconnects.

Accuracy is judged from the truth signal (each clock's offset from its host clock, which
here is the same host clock for all), never from what the master reports.
"""

import json
import random
import signal
import time
from pathlib import Path

import pytest

from clocksync.app import driftfile
from clocksync.protocol.envelope import Publish
from clocksync.protocol.messages import Correction, Poll, Reply, RoundSummary
from clocksync.protocol.topics import Topics
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.link import MqttLink
from tests.integration.support import start_master

LINES = ("KMC", "MIT", "TAPMI", "SOLS")
ROUND_TIMEOUT_S = 15.0


def true_distances(observer: Observer) -> dict[str, float]:
    """|participant - master| for every online participant, from the truth signal."""
    return observer.distances_from("lab")


def settle_statuses(observer: Observer) -> None:
    """Let the statuses published after the latest corrections arrive."""
    observer.pump(0.3)


def wait_rounds(observer: Observer, count: int) -> RoundSummary:
    assert observer.wait_for_rounds(count, ROUND_TIMEOUT_S + count), (
        f"only {len(observer.rounds)} of {count} rounds arrived"
    )
    return observer.rounds[count - 1]


def wait_online(observer: Observer, names: list[str]) -> None:
    assert observer.wait_for(
        lambda: all(
            name in observer.statuses and observer.statuses[name].state == "online"
            for name in names
        ),
        ROUND_TIMEOUT_S,
    ), f"not all of {names} came online: {sorted(observer.statuses)}"


def test_four_lines_reach_a_millisecond_of_the_master_within_five_rounds(
    fleet: Fleet, observer: Observer
) -> None:
    rng = random.Random(20261128)
    for line in LINES:
        fleet.start("node", ClockSpec(line, rng.uniform(-5, 5), rng.uniform(-100, 100)))
    wait_online(observer, list(LINES))
    start_master(fleet, offset_s=rng.uniform(-5, 5), drift_ppm=rng.uniform(-100, 100))
    start = observer.rounds[-1].round if observer.rounds else 0
    first = wait_rounds(observer, len(observer.rounds) + 1)
    assert first.spread_s > 0.1, "the clocks should start seconds apart"
    assert {p.name for p in first.participants} == {"lab", *LINES}
    wait_rounds(observer, 5 + start)
    settle_statuses(observer)
    distances = true_distances(observer)
    assert set(distances) == set(LINES)
    assert max(distances.values()) <= 0.001, distances
    statuses = observer.statuses
    assert statuses["lab"].role == "master"
    assert all(statuses[line].role == "node" for line in LINES)
    assert all(statuses[line].sync == "berkeley" for line in LINES)


def test_a_node_killed_mid_run_does_not_stop_the_rounds(fleet: Fleet, observer: Observer) -> None:
    for line in LINES:
        fleet.start("node", ClockSpec(line, random.uniform(-1, 1)))
    wait_online(observer, list(LINES))
    start_master(fleet)
    wait_rounds(observer, 3)
    fleet.processes["MIT"].send_signal(signal.SIGKILL)
    assert observer.wait_for(lambda: observer.statuses["MIT"].state == "offline", 10), (
        "the Last Will did not mark the killed node offline"
    )
    killed_at = len(observer.rounds)
    later = wait_rounds(observer, killed_at + 3)
    names = {row.name for row in later.participants}
    assert names == {"lab", "KMC", "TAPMI", "SOLS"}
    assert later.missing == (), "a node known to be offline is not polled"
    settle_statuses(observer)
    distances = true_distances(observer)
    assert set(distances) == {"KMC", "TAPMI", "SOLS"}
    assert max(distances.values()) <= 0.001, distances


def test_hostile_messages_are_dropped_and_move_no_clock(
    fleet: Fleet, observer: Observer, site: str
) -> None:
    fleet.start("node", ClockSpec("KMC", 0.2))
    fleet.start("node", ClockSpec("MIT", -0.2))
    wait_online(observer, ["KMC", "MIT"])
    start_master(fleet)
    wait_rounds(observer, 4)
    settle_statuses(observer)
    before = observer.true_offsets()
    last = observer.rounds[-1]
    topics = Topics(site)
    valid_correction = Correction("lab", "KMC", last.epoch, last.round, 0, 5.0)
    hostile = [
        (topics.correction("KMC"), b"not json"),
        (topics.correction("KMC"), b'{"v": 1, "type": "correction", "correction_s": NaN}'),
        (topics.correction("KMC"), b"{" * 50_000),
        (topics.correction("KMC"), valid_correction.encode()),
        (
            topics.correction("KMC"),
            Correction("lab", "MIT", last.epoch, last.round + 1, 0, 5.0).encode(),
        ),
        (
            topics.correction("KMC"),
            Correction("lab", "KMC", last.epoch + 1, last.round + 1, 0, 5.0).encode(),
        ),
        (
            topics.correction("KMC"),
            json.dumps({"v": 1, "type": "correction", "correction_s": "5"}).encode(),
        ),
        (topics.poll("KMC"), b"\x00\xff" * 3000),
        (topics.poll("KMC"), Poll("../..", "KMC", 1, 1, 1).encode()[:-3]),
        (topics.poll("KMC"), Poll("lab", "MIT", 1, 1, 1).encode()),
        (topics.reply("KMC"), Reply("MIT", last.epoch, last.round + 1, 0, 0, 0).encode()),
        (topics.reply("ghost"), Reply("ghost", 1, 1, 0, 0, 0).encode()),
        (topics.reply("KMC"), b"[]"),
    ]
    attacker = MqttLink(observer.link.broker, f"attacker-{site}")
    try:
        assert attacker.wait_until_ready(10)
        for _ in range(3):
            for topic, payload in hostile:
                attacker.publish(Publish(topic, payload))
            attacker.poll(0.01)
            observer.pump(0.2)
    finally:
        attacker.close([])
    rounds_before = len(observer.rounds)
    wait_rounds(observer, rounds_before + 2)
    settle_statuses(observer)
    after = observer.true_offsets()
    for name in ("KMC", "MIT", "lab"):
        assert abs(after[name] - before[name]) < 0.002, (name, before, after)
    assert all(fleet.processes[name].poll() is None for name in ("KMC", "MIT", "lab"))
    assert "dropped" in fleet.log_of("KMC")
    assert "dropped" in fleet.log_of("lab")


def test_rounds_resume_after_the_broker_restarts(tmp_path: Path) -> None:
    site = "restart"
    first = LocalMosquitto().start()
    port = first.port
    fleet = Fleet(first.url, site, tmp_path)
    watcher: Observer | None = None
    second: LocalMosquitto | None = None
    try:
        fleet.start("node", ClockSpec("KMC", 0.3))
        fleet.start("node", ClockSpec("MIT", -0.3))
        start_master(fleet)
        watcher = Observer(first.url, site)
        assert watcher.wait_for_rounds(2, ROUND_TIMEOUT_S)
        watcher.close()
        first.stop()
        time.sleep(1.0)
        second = LocalMosquitto(port).start()
        watcher = Observer(second.url, site)
        assert watcher.wait_for_rounds(3, ROUND_TIMEOUT_S + 30), "rounds did not resume"
        assert {row.name for row in watcher.rounds[-1].participants} == {"lab", "KMC", "MIT"}
        assert watcher.rounds[-1].round > 3
        settle_statuses(watcher)
        assert max(true_distances(watcher).values()) <= 0.001
        assert "Traceback" not in fleet.log_of("KMC") + fleet.log_of("lab")
    finally:
        fleet.stop()
        if watcher is not None:
            watcher.close()
        first.stop()
        if second is not None:
            second.stop()


def test_measured_offsets_lie_within_half_their_delay_of_the_truth(
    fleet: Fleet, observer: Observer
) -> None:
    fleet.start("node", ClockSpec("KMC", 0.3), "--status-interval", "0.05")
    fleet.start("node", ClockSpec("MIT", -0.3), "--status-interval", "0.05")
    wait_online(observer, ["KMC", "MIT"])
    start_master(fleet, "--status-interval", "0.05")
    assert observer.wait_for_rounds(9, ROUND_TIMEOUT_S + 9)
    observer.pump(0.2)
    checked = 0
    for summary in observer.rounds[2:]:
        master_offset = observer.true_offsets()["lab"]
        host_time = summary.started - round(master_offset * 1e9)
        master_truth = observer.offset_at("lab", host_time)
        for row in summary.participants:
            node_truth = observer.offset_at(row.name, host_time)
            if row.role != "node" or node_truth is None or master_truth is None:
                continue
            error = abs(row.offset_s - (node_truth - master_truth))
            assert error <= row.delay_s / 2 + 2e-6, (summary.round, row, error)
            checked += 1
    assert checked >= 10


def test_a_restarted_line_keeps_its_frequency_from_the_drift_file(
    fleet: Fleet, observer: Observer, tmp_path: Path
) -> None:
    """The line runs 200 ppm fast, the master true: the site settles halfway, so the line
    learns about -100 ppm.  Restarted with no master to follow, it runs at the rate it
    kept (about +100 ppm from its host), not at its crystal's +200."""
    drift_file = tmp_path / "KMC.drift"
    start_master(fleet, "--status-interval", "0.1")
    node = ("node", ClockSpec("KMC", 0.0, 200.0), "--drift-file", str(drift_file))
    fleet.start(*node, "--status-interval", "0.1")

    def estimated() -> bool:
        """Both estimates settled: the line's rate is learned against the master's."""
        errors = [
            None if status is None else status.frequency_error_ppm
            for status in (observer.statuses.get("KMC"), observer.statuses.get("lab"))
        ]
        return all(error is not None and error < 1 for error in errors)

    assert observer.wait_for(estimated, 2 * ROUND_TIMEOUT_S)
    learned = observer.statuses["KMC"].frequency_ppm
    master = observer.statuses["lab"].frequency_ppm
    assert learned is not None
    assert master is not None
    assert learned - master == pytest.approx(-200, abs=30)
    fleet.kill("lab")
    fleet.processes["KMC"].terminate()
    assert fleet.processes["KMC"].wait(timeout=10) == 0
    assert driftfile.load(drift_file) == pytest.approx(learned, abs=10)
    restarted = time.time_ns()
    fleet.restart("KMC")

    def back() -> bool:
        status = observer.statuses["KMC"]
        return status.state == "online" and (status.host_time or 0) > restarted

    assert observer.wait_for(back, 10)
    first = observer.statuses["KMC"]
    observer.pump(2.0)
    last = observer.statuses["KMC"]
    assert first.host_time is not None
    assert last.host_time is not None
    assert first.host_offset_s is not None
    assert last.host_offset_s is not None
    rate_ppm = (last.host_offset_s - first.host_offset_s) / (last.host_time - first.host_time)
    rate_ppm *= 1e9 * 1e6
    assert rate_ppm == pytest.approx(200 + driftfile.load(drift_file), abs=15)
