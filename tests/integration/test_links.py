"""Real links with injected delay (clocksync.testing.netem) between participants and a real
Mosquitto: the proxy delays each direction as told, and the protocol's error over an
asymmetric link is the half-asymmetry floor, no more."""

import time

import pytest

from clocksync.sim.delays import Fixed, Path
from clocksync.testing.netem import DelayLink
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.url import BrokerUrl
from tests.integration.support import start_master


def test_each_direction_is_held_for_its_own_delay(broker: BrokerUrl, site: str) -> None:
    link = DelayLink(broker, Path(Fixed(0.030), Fixed(0.010)))
    watcher = Observer(link.url, site)
    try:
        started = time.monotonic()
        assert watcher.link.wait_until_ready(10)
        # CONNECT waits 30 ms up and CONNACK 10 ms down; SUBSCRIBE and SUBACK as much again.
        assert time.monotonic() - started >= 0.040
    finally:
        watcher.close()
        link.close()


def test_over_an_asymmetric_link_a_line_is_off_by_half_the_asymmetry(
    fleet: Fleet, observer: Observer, broker: BrokerUrl
) -> None:
    """Polls reach the line in 2 ms, its replies take 6 ms: no exchange can tell that from
    a line 2 ms behind, so it ends 2 ms ahead of the master, and the filter adds nothing."""
    link = DelayLink(broker, Path(Fixed(0.006), Fixed(0.002)))
    try:
        line = ClockSpec("KMC", 0.2, 50.0)
        fleet.start("node", line, "--status-interval", "0.1", broker=link.url)
        start_master(fleet, "--status-interval", "0.1")
        assert observer.wait_for_rounds(12, 30)
        observer.pump(1.0)
        distance = observer.true_offsets()["KMC"] - observer.true_offsets()["lab"]
        assert distance == pytest.approx(0.002, abs=0.0005)
    finally:
        fleet.stop()
        link.close()
