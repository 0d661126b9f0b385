"""A site under faults, for the integration tests and bench/faults.py: a private Mosquitto,
masters (one leading, the others standing by) and nodes, each its own process, crashed
(SIGKILL) or frozen (SIGSTOP, as a machine cut off) and brought back, while an observer
records every status and round summary.

What a fault did is judged from outside, from the truth signal: how long the site went
without a round, how long after the restart everyone was in a round again, the spread of
the clocks two rounds after that, and whether any clock ever ran backwards or jumped.
"""

import itertools
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from clocksync.core.clock import NS_PER_S, Discipline
from clocksync.protocol.messages import RoundSummary, Status
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet

STATUS_INTERVAL_S = 0.1
SETTLE_S = 0.3
"""Long enough for every participant's status after a correction to arrive."""
JUMP_SLACK_S = 0.001
"""How much more than the fastest slew a clock may seem to move between two statuses."""


class Fault(StrEnum):
    BROKER = "broker"
    LEADER = "leader"
    STANDBY = "standby"
    NODE = "node"


@dataclass(frozen=True)
class Recovery:
    """What one fault did, from outside."""

    fault: Fault
    target: str
    without_rounds_s: float
    """From the fault to the first round summary after it, from whichever master."""
    took_over_s: float | None
    """When the leader was struck: from the fault to the first status of another master
    saying that it leads."""
    online_s: float
    """From the restart to the last participant's first status after it: all connected."""
    back_s: float
    """From the restart to the first round every participant answered."""
    spread_s: float
    """max - min of the clocks, two rounds after everyone was back."""
    leader: str
    """Who led that round."""


class ChaosSite:
    """`with ChaosSite(...) as site:` a running site; faults with `crash` and `freeze`."""

    def __init__(
        self,
        logs: Path,
        masters: Iterable[ClockSpec],
        nodes: Iterable[ClockSpec],
        *,
        interval_s: float = 0.5,
        name: str = "chaos",
    ) -> None:
        self.masters = [clock.name for clock in masters]
        self.nodes = [clock.name for clock in nodes]
        self.interval_s = interval_s
        self.kills: dict[str, list[int]] = {}
        """Per participant, the host times (ns) at which it was killed."""
        self.broker = LocalMosquitto().start()
        self.fleet = Fleet(self.broker.url, name, logs)
        self.observer = Observer(self.broker.url, name, keep_history=True)
        cadence = ("--status-interval", str(STATUS_INTERVAL_S))
        for rank, clock in enumerate(masters):
            priority = str(len(self.masters) - rank)
            every = ("--interval", str(interval_s), "--priority", priority, *cadence)
            self.fleet.start("master", clock, *every)
        for clock in nodes:
            self.fleet.start("node", clock, *cadence)

    def __enter__(self) -> "ChaosSite":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.fleet.stop()
        self.observer.close()
        self.broker.stop()

    @property
    def everyone(self) -> set[str]:
        return {*self.masters, *self.nodes}

    def leader(self) -> str | None:
        """The master of the latest round summary."""
        return self.observer.rounds[-1].master if self.observer.rounds else None

    def standby(self) -> str:
        """A master that does not lead."""
        return next(name for name in self.masters if name != self.leader())

    def converge(self, timeout_s: float = 30) -> float:
        """Wait for a round every participant answered, and two more; the spread then."""
        return self._settled_after(0, 0, timeout_s)

    def crash(self, fault: Fault, target: str, downtime_s: float, timeout_s: float) -> Recovery:
        """Kill `target` (a participant, or the broker) with SIGKILL, start it again after
        `downtime_s`, and watch the site recover."""
        mark, killed, struck_host = len(self.observer.rounds), time.monotonic(), time.time_ns()
        if fault is Fault.BROKER:
            port = self.broker.port
            self.broker.kill()
            time.sleep(downtime_s)
            self.broker = LocalMosquitto(port).start()
        else:
            self.kills.setdefault(target, []).append(struck_host)
            self.fleet.kill(target)
            self.observer.pump(downtime_s)
            self.fleet.restart(target)
        return self._recovery(fault, target, (mark, killed, struck_host), timeout_s)

    def freeze(self, target: str, frozen_s: float, timeout_s: float) -> Recovery:
        """Stop `target` (SIGSTOP: its connection stays open, but it says nothing, as a
        machine cut off from the broker), and let it go on after `frozen_s`."""
        struck = len(self.observer.rounds), time.monotonic(), time.time_ns()
        process = self.fleet.processes[target]
        process.send_signal(signal.SIGSTOP)
        try:
            self.observer.pump(frozen_s)
        finally:
            process.send_signal(signal.SIGCONT)
        return self._recovery(Fault.LEADER, target, struck, timeout_s)

    def _recovery(
        self, fault: Fault, target: str, struck: tuple[int, float, int], timeout_s: float
    ) -> Recovery:
        """`struck`: the number of round summaries, the monotonic and the host time when
        the fault struck."""
        mark, struck_mono, struck_host = struck
        restarted, restarted_host = time.monotonic(), time.time_ns()
        rounds = self.observer.rounds
        assert self.observer.wait_for(lambda: len(rounds) > mark, timeout_s), (
            f"no round after the {fault} fault on {target}"
        )
        without_rounds_s = self._arrival(mark) - struck_mono
        full = self._first_full_round(mark, struck_host, timeout_s)
        back_s = self._arrival(full) - restarted
        spread_s = self._settled_after(full, struck_host, timeout_s)
        online_s = self._online_after(restarted_host)
        took_over_s = self._took_over_after(target, struck_host) if fault is Fault.LEADER else None
        return Recovery(
            fault,
            target,
            without_rounds_s,
            took_over_s,
            online_s,
            back_s,
            spread_s,
            rounds[full].master,
        )

    def _took_over_after(self, deposed: str, host_time: int) -> float | None:
        """How long after `host_time` another master than `deposed` said it leads."""
        history = self.observer.history or {}
        claims = [
            at
            for name in self.masters
            if name != deposed
            for at in host_times(history.get(name, []), host_time, leader=name)
        ]
        return None if not claims else (min(claims) - host_time) / NS_PER_S

    def _online_after(self, host_time: int) -> float:
        """How long after `host_time` the last participant published its first status."""
        history = self.observer.history or {}
        firsts = [min(host_times(history.get(name, []), host_time)) for name in self.everyone]
        return (max(firsts) - host_time) / NS_PER_S

    def _first_full_round(self, since: int, after_host: int, timeout_s: float) -> int:
        """The first round summary, from index `since` on, of a round that started after
        host time `after_host` (so that no answer before a fault counts) and that every
        participant answered."""
        rounds, everyone = self.observer.rounds, self.everyone

        def full(summary: RoundSummary) -> bool:
            leader = self.observer.statuses.get(summary.master)
            offset_s = 0.0 if leader is None else leader.host_offset_s or 0.0
            started_host = summary.started - round(offset_s * NS_PER_S)
            answered = {entry.name for entry in summary.participants}
            return started_host > after_host and everyone <= answered

        assert self.observer.wait_for(
            lambda: any(full(summary) for summary in rounds[since:]), timeout_s
        ), f"no round with all of {sorted(everyone)} since round summary {since}"
        return next(index for index in range(since, len(rounds)) if full(rounds[index]))

    def _settled_after(self, since: int, after_host: int, timeout_s: float) -> float:
        """The truth spread once two round summaries have followed the first full one (see
        _first_full_round) and the statuses after them have arrived."""
        full = self._first_full_round(since, after_host, timeout_s)
        assert self.observer.wait_for_rounds(full + 3, timeout_s), "rounds stopped"
        self.observer.pump(SETTLE_S)
        offsets = self.observer.true_offsets()
        return max(offsets.values()) - min(offsets.values())

    def _arrival(self, index: int) -> float:
        """When round summary `index` arrived (monotonic s)."""
        return self.observer.round_arrivals[index]

    def jumps(self) -> list[str]:
        """Every pair of successive statuses of one process between which its clock moved
        against its host's by more than the fastest slew allows: a step, or time run
        backwards.  A restart begins a new process."""
        history = self.observer.history or {}
        rate = Discipline().max_slew_ppm / 1e6
        found = []
        for name, statuses in history.items():
            for (before_ns, before_s), (after_ns, after_s) in successive(
                statuses, self.kills.get(name, [])
            ):
                elapsed_s = (after_ns - before_ns) / NS_PER_S
                moved_s = after_s - before_s
                if abs(moved_s) > rate * elapsed_s + JUMP_SLACK_S:
                    found.append(f"{name} moved {moved_s * 1e3:+.3f} ms in {elapsed_s:.3f} s")
        return found


def host_times(statuses: list[Status], since: int, leader: str | None = None) -> list[int]:
    """The host times of the statuses published at or after `since`, of those naming
    `leader` if given."""
    return [
        status.host_time
        for status in statuses
        if status.host_time is not None
        and status.host_time >= since
        and (leader is None or status.leader == leader)
    ]


Reading = tuple[int, float]
"""A status's host time (ns) and its clock's offset from the host clock then (s)."""


def successive(statuses: list[Status], kills: list[int]) -> Iterable[tuple[Reading, Reading]]:
    """Pairs of successive readings of one process, in host time; a kill starts a new
    process, and a status delivered again (a retained one, on resubscribing) is no new
    reading."""
    readings = [
        (status.host_time, status.host_offset_s)
        for status in statuses
        if status.host_time is not None and status.host_offset_s is not None
    ]
    for before, after in itertools.pairwise(readings):
        if after[0] <= before[0]:
            continue
        if any(before[0] < kill <= after[0] for kill in kills):
            continue
        yield before, after
