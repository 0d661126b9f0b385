"""One Berkeley round, without I/O: the polls sent, the replies drawn, the outcome.

The master polls every node several times a round and keeps, per node, the exchange with
the lowest delay (as timed kept the minimum one-way deltas): a reply held up on a busy broker
or host then costs nothing.  Each poll goes to one node on its own topic, with its own send
time: a poll broadcast to all would reach them one after another as the broker fans it out,
and each node's place in that order would bias its offset by half its wait.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from clocksync.core.measurement import Exchange
from clocksync.core.sample import Sample
from clocksync.core.selection import (
    DEFAULT_MIN_WINDOW_S,
    Selection,
    corrections,
    fault_tolerant_average,
    lowest_delay,
    spread,
)
from clocksync.protocol.enums import RoleKind
from clocksync.protocol.messages import Reply, RoundEntry

MAX_REPLY_TIMEOUT_S = 2.0
FULL_MOVE_S = 0.001
PHASE_NOISE_S = 10e-6
"""See move_for."""
MAX_SAMPLES = 64
"""Polls to one node a round at most (a node answers no more than 256)."""
SEND_SHARE = 0.8


@dataclass(frozen=True)
class RoundPlan:
    """When a round polls and closes, and how it averages.

    A round starts every `interval_s` and closes `reply_timeout_s` after it started (default:
    half the interval, at most 2 s).  It polls every node `samples` times, the polls spread
    evenly over the first SEND_SHARE of the timeout, so that no exchange queues in the
    broker behind the polls to other nodes.
    """

    interval_s: float = 1.0
    samples: int = 8
    reply_timeout_s: float | None = None
    min_window_s: float = DEFAULT_MIN_WINDOW_S

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError("the interval must be positive")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be from 1 to {MAX_SAMPLES}")
        if not 0 < self.timeout_s <= self.interval_s:
            raise ValueError("the reply timeout must be positive and at most the interval")
        if not self.min_window_s > 0:
            raise ValueError("the minimum window must be positive")

    @property
    def timeout_s(self) -> float:
        if self.reply_timeout_s is not None:
            return self.reply_timeout_s
        return min(self.interval_s / 2, MAX_REPLY_TIMEOUT_S)

    def poll_pace_s(self, polls: int) -> float:
        """Seconds between consecutive polls of a round that sends `polls` polls."""
        return SEND_SHARE * self.timeout_s / max(1, polls)


class RoundCollector:
    """The polls of one round and the replies they drew: `samples` polls to each of
    `nodes`, one to each of `probes` (nodes not heard from lately).

    `started_mono` is when the round began; `adjusted_at_start` the master clock's total
    adjustment then, the reference for the master's own correction.
    """

    def __init__(
        self,
        master: str,
        epoch: int,
        number: int,
        nodes: Iterable[str],
        *,
        samples: int = 1,
        probes: Iterable[str] = (),
        started_mono: int = 0,
        adjusted_at_start: int = 0,
    ) -> None:
        self.master = master
        self.epoch = epoch
        self.number = number
        self.nodes = tuple(sorted(nodes))
        self.probes = tuple(probes)
        self.started_mono = started_mono
        self.adjusted_at_start = adjusted_at_start
        # Every node's first sample, then every node's second..., so that each node's
        # samples spread over the whole round; the probes go first.
        self._schedule = [(probe, 0) for probe in self.probes] + [
            (node, seq) for seq in range(samples) for node in self.nodes
        ]
        self._sent: dict[tuple[str, int], int | None] = {}
        self._exchanges: dict[str, dict[int, Exchange]] = {}
        self._precise: dict[str, set[int]] = {}
        self._arrivals: dict[tuple[str, int], tuple[int, int, float | None]] = {}
        """Per reply: when it arrived (monotonic), the master clock's total adjustment
        then, and the node's as it answered, if it said."""

    @property
    def polls_sent(self) -> int:
        return len(self._sent)

    @property
    def polls_due(self) -> int:
        return len(self._schedule)

    def next_poll(self) -> tuple[str, int]:
        """The node and sequence number of the next poll, now counted as sent; its send
        time is unknown until `poll_sent`."""
        node, seq = self._schedule[self.polls_sent]
        self._sent[node, seq] = None
        return node, seq

    def poll_sent(self, node: str, seq: int, t1: int | None) -> None:
        """Record that poll `seq` to `node` left at t1, or None when it did not leave at once
        (its send time is then unknown and its reply cannot be used)."""
        if (node, seq) in self._sent:
            self._sent[node, seq] = t1

    def add_reply(
        self, reply: Reply, t4: int, arrived_mono: int = 0, adjusted_ns: int = 0
    ) -> str | None:
        """Keep the reply's exchange, which arrived at `arrived_mono` when the master clock's
        total adjustment was `adjusted_ns`; return why it was refused, or None when kept."""
        if (reply.epoch, reply.round) != (self.epoch, self.number):
            return f"late or foreign reply (epoch {reply.epoch}, round {reply.round})"
        if (reply.node, reply.seq) not in self._sent:
            return f"reply to poll {reply.seq}, which was not sent to {reply.node}"
        t1 = self._sent[reply.node, reply.seq]
        if t1 is None:
            return f"reply to poll {reply.seq}, whose send time is unknown"
        if reply.sent < reply.received:
            return "reply sent before the poll was received"
        answers = self._exchanges.setdefault(reply.node, {})
        if reply.seq in answers:
            return f"duplicate reply to poll {reply.seq}"
        previous = reply.previous
        earlier = None if previous is None else answers.get(previous.seq)
        if previous is not None and earlier is not None:
            if not earlier.t3 <= previous.sent <= reply.sent:
                return f"the send time given for poll {previous.seq} is out of order"
            answers[previous.seq] = replace(earlier, t3=previous.sent)
            self._precise.setdefault(reply.node, set()).add(previous.seq)
        answers[reply.seq] = Exchange(t1, reply.received, reply.sent, t4)
        self._arrivals[reply.node, reply.seq] = (arrived_mono, adjusted_ns, reply.adjusted_s)
        return None

    def best_samples(self) -> dict[str, Sample]:
        """Per node, its lowest-delay exchange of the round, among those whose precise send
        time arrived if any did."""
        best: dict[str, Sample] = {}
        for node, answers in self._exchanges.items():
            precise = self._precise.get(node, set())
            candidates = [
                Sample(
                    exchange,
                    peer=node,
                    seq=seq,
                    adjusted_ns=self._arrivals[node, seq][1],
                    arrived_mono=self._arrivals[node, seq][0],
                )
                for seq, exchange in answers.items()
                if seq in precise or not precise
            ]
            chosen = lowest_delay(candidates)
            if chosen is not None:
                best[node] = chosen
        return best

    def node_adjusted_s(self, sample: Sample) -> float | None:
        """All the correction the node's clock had taken when it answered `sample`'s poll,
        as its reply said (None: it did not say)."""
        return self._arrivals[sample.peer, sample.seq][2]

    def answered(self) -> frozenset[str]:
        """The nodes, and probes, that answered."""
        return frozenset(self._exchanges)


@dataclass(frozen=True)
class Outcome:
    """What a round decided: per clock its offset and correction, master included; the
    site moves by `move_s`, the master's own correction."""

    selection: Selection
    move_s: float
    corrections: dict[str, float]
    spread_s: float
    entries: tuple[RoundEntry, ...]


def move_for(average_s: float, bound_s: float, *, acquiring: bool) -> float:
    """How far the site moves towards a round's average, known within `bound_s`: all the
    way while it is `acquiring` (a site starting) or when the average is far (FULL_MOVE_S)
    and beyond its bound (a clock really disagrees); else by a gain that is smaller the
    less the average is known, PHASE_NOISE_S² / (PHASE_NOISE_S² + bound²).

    Once the clocks agree, a round's average is the noise of its measurements: following it
    in full walks the site's time at random (its clocks all follow the master, so nothing
    pulls it back: tens of ppm in minutes where the measurements were milliseconds wide),
    while the master's clock and the site's frequency (clocksync.master.ensemble) already
    keep the time.  A lasting disagreement still moves it, over a few rounds."""
    far = abs(average_s) >= FULL_MOVE_S and abs(average_s) > bound_s
    if acquiring or far:
        return average_s
    return average_s * PHASE_NOISE_S**2 / (PHASE_NOISE_S**2 + bound_s**2)


def average_bound(samples: Mapping[str, Sample], selection: Selection) -> float:
    """How far a round's average can be off by its polled clocks' exchanges: the mean of
    their half-delays over every clock averaged (the master's own offset, 0, is exact)."""
    halves = [samples[name].delay_s / 2 for name in selection.included if name in samples]
    return sum(halves) / max(1, len(selection.included))


def settle(
    master: str,
    samples: Mapping[str, Sample],
    *,
    min_window_s: float,
    fleet: Mapping[str, float] | None = None,
    acquiring: bool = True,
) -> Outcome:
    """Average the master's clock (offset 0 by definition) with every node that answered
    and the `fleet` nodes' reported offsets (clocksync.master.fleet), and move the site
    towards it (`move_for`).  The fleet's reports count in the average and the spread, but
    the rows list the polled clocks alone, so that the summary stays small however large
    the fleet."""
    polled = {master: 0.0} | {node: s.offset_s for node, s in samples.items()}
    offsets = {**(fleet or {}), **polled}
    selection = fault_tolerant_average(offsets, min_window_s=min_window_s)
    bound_s = average_bound(samples, selection)
    move_s = move_for(selection.average_s, bound_s, acquiring=acquiring)
    correction = corrections(polled, move_s)
    rows = [
        RoundEntry(
            master, RoleKind.MASTER, 0.0, 0.0, correction[master], master in selection.excluded
        )
    ]
    rows += [
        RoundEntry(
            node,
            RoleKind.NODE,
            offsets[node],
            samples[node].delay_s,
            correction[node],
            node in selection.excluded,
        )
        for node in sorted(samples)
    ]
    return Outcome(selection, move_s, correction, spread(offsets), tuple(rows))
