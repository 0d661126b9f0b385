"""Participants as separate `clocksync` processes, each with a deliberately wrong clock."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clocksync.transport.url import PASSWORD_ENV, BrokerUrl

STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ClockSpec:
    """How wrong a participant's clock starts: offset from its host's, and frequency error."""

    name: str
    offset_s: float = 0.0
    drift_ppm: float = 0.0


def participant_command(
    role: str, clock: ClockSpec, broker: BrokerUrl, site: str, extra: list[str]
) -> list[str]:
    """The command line that runs one participant as its own process."""
    return [
        sys.executable,
        "-m",
        "clocksync",
        role,
        "--name",
        clock.name,
        "--broker",
        str(broker),
        "--site",
        site,
        "--offset",
        repr(clock.offset_s),
        "--drift-ppm",
        repr(clock.drift_ppm),
        *extra,
    ]


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM everything, then SIGKILL whatever has not gone within STOP_TIMEOUT_S."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Fleet:
    """Participants started as `clocksync` processes, each logging to a file in `logs`
    (a restarted one appends to its own); `stop` ends them all."""

    def __init__(self, broker: BrokerUrl, site: str, logs: Path) -> None:
        self.broker = broker
        self.site = site
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}

    def start(
        self,
        role: str,
        clock: ClockSpec,
        *extra: str,
        password: str | None = None,
        broker: BrokerUrl | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a participant; `password`, if given, is its CLOCKSYNC_PASSWORD; `broker`,
        if given, where it connects instead of the fleet's broker (a link to it)."""
        command = participant_command(role, clock, broker or self.broker, self.site, list(extra))
        env = None if password is None else {**os.environ, PASSWORD_ENV: password}
        self._commands[clock.name] = (command, env)
        return self.restart(clock.name)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` again, as it was started first."""
        command, env = self._commands[name]
        with (self.logs / f"{name}.log").open("ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """End `name` as a crash would (SIGKILL): no goodbye, only its Last Will."""
        process = self.processes[name]
        process.kill()
        process.wait()

    def log_of(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_processes(list(self.processes.values()))
        self.processes.clear()
