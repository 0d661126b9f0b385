"""Helpers for the integration tests: participants as processes, the CLI as a process,
Cristian clients in the test's own process."""

import subprocess
import sys
from pathlib import Path

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.demo import SimulatedClock, participant_command, stop_processes
from clocksync.testing.observer import Observer
from clocksync.transport import BrokerUrl
from clocksync.nodes.asker import CristianClient


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


def cristian_client(
    broker: BrokerUrl, site: str, name: str, offset_s: float, protocol: str = "5"
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
