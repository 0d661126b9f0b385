"""Helpers for the integration tests: participants as processes, the CLI as a process,
Cristian clients in the test's own process."""

import subprocess
import sys
import time
from pathlib import Path

from clocksync.clock import NS_PER_S, SoftwareClock
from clocksync.demo import SimulatedClock, participant_command, stop_processes
from clocksync.observer import Observer
from clocksync.topics import Topics
from clocksync.transport import BrokerUrl, Inbound, MqttLink
from nodes.asker import Asker, Burst


class Fleet:
    """Participants started as `clocksync` processes; all are stopped at teardown."""

    def __init__(self, broker: BrokerUrl, site: str, logs: Path) -> None:
        self.broker = broker
        self.site = site
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        role: str,
        name: str,
        offset_s: float = 0.0,
        drift_ppm: float = 0.0,
        *extra: str,
    ) -> subprocess.Popen[bytes]:
        clock = SimulatedClock(name, offset_s, drift_ppm)
        command = participant_command(role, clock, self.broker, self.site, list(extra))
        with (self.logs / f"{name}.log").open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def master(self, *extra: str, offset_s: float = 0.0, drift_ppm: float = 0.0) -> None:
        self.start("master", "lab", offset_s, drift_ppm, "--interval", "0.5", *extra)

    def log_of(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_processes(list(self.processes.values()))


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `clocksync ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "clocksync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class CristianClient:
    """An in-process Cristian client with its own connection, for tests that need many at
    once or need to look at every sample."""

    def __init__(
        self, broker: BrokerUrl, site: str, name: str, offset_s: float, protocol: str = "5"
    ) -> None:
        self.clock = SoftwareClock(offset_s=offset_s)
        topics = Topics(site)
        self.burst: Burst | None = None
        self.link = MqttLink(
            broker,
            client_id=f"test-{site}-{name}",
            subscriptions=[topics.cristian_reply(name)],
            on_message=self._take,
            on_connected=lambda: None,
            protocol=protocol,
        )
        self.asker = Asker(self.link, self.clock, topics, name, timeout_s=1.0)

    def _take(self, message: Inbound) -> None:
        if self.burst is not None:
            self.burst.take(message)

    def start(self, samples: int) -> Burst:
        self.burst = Burst(self.asker, samples)
        return self.burst

    def pump(self, timeout_s: float = 0.0) -> None:
        if self.burst is not None:
            self.burst.step()
        self.link.run_once(timeout_s)

    def true_offset_s(self) -> float:
        """This client's clock minus its host's: constant, since it has no drift."""
        return self.clock.host_offset_ns()[0] / NS_PER_S


def run_bursts(clients: list[CristianClient], samples: int, timeout_s: float = 30) -> None:
    """Run a burst on every client at once until all are done."""
    for client in clients:
        assert client.link.wait_until_ready(10), "client could not connect"
    bursts = [client.start(samples) for client in clients]
    deadline = time.monotonic() + timeout_s
    while not all(burst.done for burst in bursts) and time.monotonic() < deadline:
        for client in clients:
            client.pump(0.001 if len(clients) == 1 else 0.0)


def wait_for_status(observer: Observer, name: str, timeout_s: float = 15) -> None:
    assert observer.wait_for(lambda: name in observer.true_offsets(), timeout_s), (
        f"no status from {name}"
    )
