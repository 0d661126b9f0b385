"""What the benchmarks share: a private Mosquitto, a master and nodes as separate
`clocksync` processes, and errors judged from the truth signal.

Every participant publishes its status every 0.1 s by default.  For each node status, the master's
offset from the host clock at the same host time is interpolated between the master's two
neighbouring statuses, so the error is sampled all through the interval, not only just after
a correction.
"""

import contextlib
import os
import random
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path as FilePath

from clocksync.protocol.messages import RoundSummary
from clocksync.sim.delays import Path
from clocksync.sim.scenarios import MASTER, percentile
from clocksync.testing.ejabberd import PASSWORD, EjabberdCluster
from clocksync.testing.localbroker import LocalMosquitto, bridged_to
from clocksync.testing.netem import DelayLink
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes
from clocksync.transport.url import PASSWORD_ENV, BrokerUrl

CONVERGED_S = 0.001
BRIDGE_CONF = FilePath(__file__).resolve().parents[1] / "broker" / "bridge.conf"
EJABBERD_CONF = FilePath(__file__).resolve().parents[1] / "broker" / "ejabberd.yml"
TOPOLOGIES = ("one", "bridge", "cluster")
STATUS_INTERVAL = "0.1"
SITE = "bench"


@dataclass(frozen=True)
class Run:
    """What one run showed, from the round it converged on."""

    converged_after: int | None
    errors_s: list[float]
    rounds: list[RoundSummary]
    master_cpu_s: float
    round_s: list[float]
    """Each measured round's time: from its start to its summary reaching the observer."""


def fleet(seed: int, nodes: Sequence[str], offset_s: float, drift_ppm: float) -> list[ClockSpec]:
    """The master first, then the nodes, each with a seeded random offset and drift."""
    rng = random.Random(seed)
    return [
        ClockSpec(name, rng.uniform(-offset_s, offset_s), rng.uniform(-drift_ppm, drift_ppm))
        for name in (MASTER, *nodes)
    ]


def true_errors(observer: Observer, nodes: Sequence[str], since_host_time: int) -> list[float]:
    """|node - master| at every node status from `since_host_time` on."""
    assert observer.history is not None
    errors = []
    for name in nodes:
        for status in observer.history.get(name, []):
            if status.host_time is None or status.host_offset_s is None:
                continue
            if status.host_time < since_host_time:
                continue
            reference = observer.offset_at(MASTER, status.host_time)
            if reference is not None:
                errors.append(abs(status.host_offset_s - reference))
    return errors


def p50_max(values: Sequence[float], decimals: int = 2) -> str:
    """ "p50 / max" of `values`, for a table cell."""
    return f"{percentile(list(values), 0.5):.{decimals}f} / {max(values):.{decimals}f}"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (Linux)."""
    fields = FilePath(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_fleet(
    clocks: list[ClockSpec],
    *,
    rounds: int,
    converge_only: bool = False,
    status_interval: str = STATUS_INTERVAL,
    interval_s: float = 1.0,
    settle_rounds: int = 0,
    path: Path | None = None,
    topology: str = "one",
) -> Run:
    """Run the master (`clocks[0]`) and the nodes until converged and `rounds` more, every
    participant publishing its status every `status_interval` seconds, the master starting
    a round every `interval_s`; errors count from `settle_rounds` after converging.  With
    a `path`, each node reaches the broker over its own link delayed as the path says
    (clocksync.testing.netem); the master sits beside the broker, the nodes on the
    `topology`'s other broker (see `brokers`)."""
    master, *nodes = clocks
    with brokers(topology) as (master_broker, nodes_broker), contextlib.ExitStack() as links:
        observer = Observer(master_broker, SITE, keep_history=True)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            if not observer.link.wait_until_ready(10):
                raise RuntimeError("the observer could not connect")
            options = ["--status-interval", status_interval]
            for index, clock in enumerate(nodes):
                reach = nodes_broker
                if path is not None:
                    reach = links.enter_context(closing(DelayLink(nodes_broker, path, index))).url
                processes.append(_start("node", clock, reach, options))
            names = {clock.name for clock in nodes}
            if not observer.wait_for(lambda: names <= set(observer.true_offsets()), 60):
                raise RuntimeError("the nodes did not come online")
            master_options = [*options, "--interval", repr(interval_s)]
            master_process = _start("master", master, master_broker, master_options)
            processes.append(master_process)
            plan = Plan(rounds, settle_rounds, max(15.0, 5 * interval_s), converge_only)
            return _measure(observer, [c.name for c in nodes], plan, master_process.pid)
        finally:
            observer.close()
            stop_processes(processes)


@contextlib.contextmanager
def brokers(topology: str) -> Iterator[tuple[BrokerUrl, BrokerUrl]]:
    """The master's broker and the nodes': `one` Mosquitto for both; a second Mosquitto
    `bridge`d to the master's (broker/bridge.conf); or two members of an ejabberd
    `cluster` (broker/ejabberd.yml; every participant then logs in, with PASSWORD)."""
    if topology == "cluster":
        before = os.environ.get(PASSWORD_ENV)
        os.environ[PASSWORD_ENV] = PASSWORD
        try:
            with EjabberdCluster(2, EJABBERD_CONF) as cluster:
                yield cluster.urls[0], cluster.urls[1]
        finally:
            if before is None:
                del os.environ[PASSWORD_ENV]
            else:
                os.environ[PASSWORD_ENV] = before
        return
    with LocalMosquitto() as broker:
        if topology == "bridge":
            with bridged_to(broker.url, BRIDGE_CONF.read_text()) as second:
                yield broker.url, second.url
        else:
            yield broker.url, broker.url


def _start(
    role: str, clock: ClockSpec, broker: BrokerUrl, options: Sequence[str]
) -> subprocess.Popen[bytes]:
    extra = ["--log-level", "error", *options]
    return subprocess.Popen(participant_command(role, clock, broker, SITE, extra))


@dataclass(frozen=True)
class Plan:
    """How long to measure: `rounds` after converging, the first `settle_rounds` of them
    not counted; a round may take up to `round_timeout_s`."""

    rounds: int
    settle_rounds: int
    round_timeout_s: float
    converge_only: bool


def _measure(observer: Observer, nodes: list[str], plan: Plan, master_pid: int) -> Run:
    converged_after: int | None = None
    since = 0
    cpu_before = 0.0
    seen = 0
    while True:
        if not observer.wait_for_rounds(seen + 1, plan.round_timeout_s):
            raise RuntimeError("the master stopped publishing rounds")
        summary = observer.rounds[seen]
        seen += 1
        if converged_after is None:
            observer.pump(0.3)
            distances = observer.distances_from(MASTER)
            if all(n in distances for n in nodes) and max(distances.values()) <= CONVERGED_S:
                converged_after = summary.round
                since = observer.statuses[MASTER].host_time or 0
                cpu_before = cpu_seconds(master_pid)
                if plan.converge_only:
                    break
            elif summary.round > 30:
                break
        elif summary.round == converged_after + plan.settle_rounds:
            since = observer.statuses[MASTER].host_time or 0
        if converged_after is not None and summary.round >= converged_after + plan.rounds:
            break
    if converged_after is None:
        return Run(None, [], [], 0.0, [])
    cpu = cpu_seconds(master_pid) - cpu_before
    measured = [s for s in observer.rounds if s.round > converged_after]
    errors = true_errors(observer, nodes, since)
    return Run(converged_after, errors, measured, cpu, round_times(observer, converged_after))


def round_times(observer: Observer, after: int) -> list[float]:
    """From each round's start (the master's clock, taken back to the host's by its truth
    signal) to its summary's arrival at the observer, for the rounds after `after`."""
    wall_minus_mono_ns = time.time_ns() - time.monotonic_ns()
    times = []
    for summary, arrived in zip(observer.rounds, observer.round_arrivals, strict=True):
        arrived_ns = round(arrived * 1e9) + wall_minus_mono_ns
        master_offset_s = observer.offset_at(MASTER, arrived_ns)
        if summary.round > after and master_offset_s is not None:
            started_ns = summary.started - round(master_offset_s * 1e9)
            times.append((arrived_ns - started_ns) / 1e9)
    return times
