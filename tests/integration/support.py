"""Helpers for the integration tests: the CLI as a process, Cristian clients in the test's
own process, waiting for statuses."""

import os
import subprocess
import sys

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.driver.client import CristianClient
from clocksync.protocol.enums import MqttVersion
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.url import BrokerUrl


def start_master(fleet: Fleet, *extra: str, offset_s: float = 0.0, drift_ppm: float = 0.0) -> None:
    """The lab's master, with half-second rounds."""
    fleet.start("master", ClockSpec("lab", offset_s, drift_ppm), "--interval", "0.5", *extra)


def run_cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `clocksync ARGS` to completion, with `env` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "clocksync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


def cristian_client(
    broker: BrokerUrl,
    site: str,
    name: str,
    offset_s: float,
    protocol: MqttVersion = MqttVersion.V5,
) -> CristianClient:
    """A connected in-process Cristian client whose clock is `offset_s` off the host's."""
    client = CristianClient(broker, site, name, SoftwareClock(offset_s=offset_s), protocol=protocol)
    assert client.link.wait_until_ready(10), "client could not connect"
    return client


def true_offset_s(client: CristianClient) -> float:
    """The client's clock minus its host's: constant, since it has no drift."""
    return client.clock.host_offset_ns()[0] / NS_PER_S


def wait_for_status(observer: Observer, name: str, timeout_s: float = 15) -> None:
    assert observer.wait_for(lambda: name in observer.true_offsets(), timeout_s), (
        f"no status from {name}"
    )


def distance_from(
    observer: Observer, reference: str, offset_from_host_s: float, at_host: int
) -> float:
    """How far a clock `offset_from_host_s` off the host at `at_host` (ns, host clock) was
    at least from `reference` then, whose truth is known only at its statuses: between the
    two around that instant it may have slewed a round's correction in."""
    assert observer.wait_for(lambda: observer.offsets_around(reference, at_host) is not None, 5)
    around = observer.offsets_around(reference, at_host)
    assert around is not None
    low, high = around
    return max(0.0, low - offset_from_host_s, offset_from_host_s - high)
