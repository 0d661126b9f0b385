"""A site on a Mosquitto with its default settings, as users' brokers are: Nagle's
algorithm on.  Before clocksync's transport asked its kernel for quick ACKs, the broker
held every reply to a master whose kernel had not yet acknowledged what it last sent it,
until the master's next send: lines sat 5 to 9 ms off the master for minutes."""

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.testing.localbroker import USERS_DEFAULTS, LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet

LINES = ("KMC", "MIT", "TAPMI", "SOLS")


@pytest.fixture
def default_broker() -> Iterator[LocalMosquitto]:
    with LocalMosquitto(config=USERS_DEFAULTS.format(port=0)) as broker:
        yield broker


def line_errors(observer: Observer, since_host_ns: int) -> list[float]:
    """|line - master| at every line status from `since_host_ns` on, the master's truth
    taken between its statuses around that instant."""
    assert observer.history is not None
    errors = []
    for line in LINES:
        for status in observer.history.get(line, []):
            if status.host_time is None or status.host_offset_s is None:
                continue
            reference = observer.offset_at("lab", status.host_time)
            if status.host_time >= since_host_ns and reference is not None:
                errors.append(abs(status.host_offset_s - reference))
    return errors


def test_on_a_broker_with_default_settings_the_lines_stay_within_microseconds(
    default_broker: LocalMosquitto, site: str, tmp_path: Path
) -> None:
    observer = Observer(default_broker.url, site, keep_history=True)
    fleet = Fleet(default_broker.url, site, tmp_path)
    try:
        assert observer.link.wait_until_ready(10)
        rng = random.Random(21)
        fast = ("--status-interval", "0.1")
        fleet.start("master", ClockSpec("lab", rng.uniform(-5, 5)), "--interval", "1", *fast)
        for line in LINES:
            fleet.start("node", ClockSpec(line, rng.uniform(-5, 5)), *fast)
        assert observer.wait_for_rounds(4, 30), "the rounds did not begin"
        since = observer.statuses["lab"].host_time or 0
        observer.pump(15)
        errors = sorted(line_errors(observer, since))
        assert len(errors) > 4 * 100
        assert errors[len(errors) // 2] < 50e-6, "held replies left lines milliseconds off"
        assert errors[-1] < 500e-6
    finally:
        observer.close()
        fleet.stop()
