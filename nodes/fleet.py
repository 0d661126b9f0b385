"""A Berkeley node of a large fleet: it measures itself against the leader, so the leader's
work per node is one answer a round, not a poll exchange per sample.

Polling costs the leader several exchanges per node a round; with thousands of nodes that
is seconds of CPU.  So a fleet round goes (clocksync.master.fleet for the leader's side):

1. the leader publishes one tick for the whole fleet (round, term, window, report share),
   as the round before closes;
2. each fleet node, at a moment it draws at random within the window (so that the fleet
   does not ask at once: the window spans nearly the whole interval, from when the leader
   has slewed its own last correction in), makes `samples` Cristian exchanges with the
   leader on its own ask topic and keeps the lowest-delay one: offset θ = leader − node,
   within its bound;
3. with the tick's report share as its chance, it reports −θ (its offset from the leader)
   and the delay, so that the leader hears a bounded sample of the fleet however large;
4. the leader averages its own clock, its polled nodes and the reports (fault-tolerant, as
   any round) and publishes one result, the average A, for the whole fleet;
5. each fleet node adds A + θ to its clock as it was when the answer arrived: exactly the
   correction the leader would have sent it (A − its offset), slewed like any correction.
   A node whose exchange ends after the round closed (an ask late in the window, answered
   slowly) keeps the result until its answer comes: if the leader answered once it had
   taken A in itself, θ alone is the correction (see `_from_leader`).

When the tick names standby masters as its `servers`, each node asks one of them, drawn at
random, instead of the leader: the leader polls them as nodes, and the result gives each
one's offset from the leader as the round measured it, which the node takes off what it
measured (see `_from_standby`).  A standby answers only for the round its own clock is in
(clocksync.nodes.berkeley.Follower.refusal_to_answer), so that offset is still its offset.

What it accepts: ticks and results from the leader it follows (clocksync.nodes.leadership),
for rounds after the last one corrected; answers only to its own outstanding requests (the
Asker's correlation and echo checks); a result only for a round it measured.
"""

import logging
import random
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.core.sample import Sample
from clocksync.core.tracking import Reference
from clocksync.nodes.asker import Asker, Burst
from clocksync.nodes.leadership import Followed, LeaderWatch
from clocksync.protocol.enums import MqttVersion, RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import FleetReport, FleetResult, FleetTick, Leader
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import IDLE_NS, Measured, Participant

log = logging.getLogger(__name__)

OPEN_ROUNDS = 4
"""Measured rounds kept awaiting their result at most."""
ANSWER_TIMEOUT_S = 2.0
"""How long a fleet node waits for its answer.  The answer's arrival is the kernel's
timestamp, so one read late by a busy device (or a gateway's thread running thousands of
nodes) is as good as one read at once; waiting only for 0.5 s cost a tenth of a loaded
10,000-node fleet its correction.  A newer round's ask abandons a wait still under way."""


@dataclass(frozen=True)
class _Ask:
    """A round's measurement to make: at `at` (monotonic), for `master`, of `server`'s
    clock (the master's, or a standby's answering for it), reporting or not."""

    master: str
    epoch: int
    round: int
    at: int
    report: bool
    server: str


class FleetNode(Participant):
    """One clock of a large fleet (a kiosk, a controller among thousands)."""

    kind = RoleKind.NODE
    sync = SyncMode.FLEET
    status_after_correction = False
    """Thousands of statuses right after every round would cost the leader more than the
    round itself; the truth signal comes with each status interval instead."""

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        status_interval_s: float,
        samples: int = 1,
        timeout_s: float = ANSWER_TIMEOUT_S,
        keys: Keys = NO_KEYS,
        protocol: MqttVersion = MqttVersion.V5,
        rng: random.Random | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        """`rng` draws the moment to ask and whether to report (seeded in the simulator);
        `random_bytes` makes the requests' correlation data, which must be unguessable."""
        super().__init__(
            name=name, site=site, clock=clock, status_interval_s=status_interval_s, keys=keys
        )
        self.watch = LeaderWatch(name, clock)
        self.asker = Asker(
            clock,
            self.topics,
            name,
            timeout_s=timeout_s,
            protocol=protocol,
            random_bytes=random_bytes,
            trusted=keys.trusted,
            reply_topic=self.topics.fleet_answer(name),
        )
        self.samples = samples
        self.corrected = 0
        self._rng = rng or random.Random()
        self._due: _Ask | None = None
        self._asking: _Ask | None = None
        self._burst: Burst | None = None
        self._measured: dict[int, tuple[_Ask, Sample]] = {}
        self._results: dict[int, tuple[FleetResult, int]] = {}
        """Results that came before this node's answer, with their arrival."""
        """Results that came before this node's own measurement of their round finished:
        an ask late in the window, answered slowly, ends after the round has closed."""
        self._corrected_through = 0
        self._measured_through = 0

    @property
    def corrected_through(self) -> int:
        """The latest round whose result this node applied (0: none yet)."""
        return self._corrected_through

    @property
    def measured_through(self) -> int:
        """The latest round this node had its answer in (0: none yet)."""
        return self._measured_through

    def subscriptions(self) -> list[str]:
        topics = self.topics
        return [topics.fleet_tick, self.asker.reply_topic, topics.fleet_result, topics.leader]

    def leader_name(self) -> str | None:
        leader = self.watch.leader
        return None if leader is None else leader[0]

    def handle(self, message: Inbound) -> list[Publish]:
        topics, topic = self.topics, message.topic
        if topic == topics.fleet_tick:
            self._tick(message)
        elif topic == self.asker.reply_topic:
            return self._answer(message)
        elif topic == topics.fleet_result:
            self._result(message)
        elif topic == topics.leader and message.payload:
            record = self.receive(message, Leader)
            if record is not None:
                self._follow(record.leader, record.epoch, message.received_mono)
        return []

    def sent(self, tag: Hashable, mono: int | None) -> None:
        self.asker.sent(tag, mono)

    def tick(self, mono: int) -> tuple[list[Publish], int]:
        sends: list[Publish] = []
        due = self._due
        if self._burst is not None and due is not None and mono >= due.at:
            abandoned = self._asking.round if self._asking is not None else 0
            log.info("%s: no answer for round %d before the next ask", self.name, abandoned)
            self._burst = self._asking = None
            self.asker.pending.abandon()
        if self._burst is None and due is not None and mono >= due.at:
            self._due = None
            self._asking = due
            self.asker.request_topic = self.topics.fleet_ask(due.server, self.name)
            self.asker.ask_round = due.round
            self._burst = Burst(self.asker, self.samples)
        burst = self._burst
        if burst is not None:
            sends = burst.step()
            if burst.done:
                sends += self._measure(burst)
        if self._burst is not None:
            deadline = self._burst.next_deadline()
            return sends, mono + self.asker.timeout_ns if deadline is None else deadline + 1
        return sends, mono + IDLE_NS if self._due is None else self._due.at

    def _follow(self, master: str, term: int, mono: int) -> bool:
        followed = self.watch.follow(master, term, mono)
        if followed is Followed.SWITCHED:
            self._measured.clear()
            self._results.clear()
            self._corrected_through = 0
        return followed is not Followed.REFUSED

    def _tick(self, message: Inbound) -> None:
        tick = self.receive(message, FleetTick)
        if tick is None or not self._follow(tick.master, tick.epoch, message.received_mono):
            return
        if tick.round <= self._corrected_through:
            return
        window_s = max(0.0, tick.window_s)
        delay_ns = round(
            self._rng.uniform(min(max(0.0, tick.settle_s), window_s), window_s) * NS_PER_S
        )
        report = self._rng.random() < tick.report_share
        server = self._rng.choice(tick.servers) if tick.servers else tick.master
        self._due = _Ask(
            tick.master, tick.epoch, tick.round, message.received_mono + delay_ns, report, server
        )
        self.work_now()

    def _answer(self, message: Inbound) -> list[Publish]:
        burst = self._burst
        if burst is None:
            log.warning("dropped a time answer on %s: no request is outstanding", message.topic)
            return []
        sends = burst.take(message)
        if burst.done:
            sends += self._measure(burst)
        self.work_now()
        return sends

    def _measure(self, burst: Burst) -> list[Publish]:
        """Keep the round's best exchange for its result; report it if drawn to."""
        self._burst = None
        asking, self._asking = self._asking, None
        best = burst.best()
        if asking is None or best is None:
            log.info("%s: no answer from the leader this round", self.name)
            return []
        self._measured[asking.round] = (asking, best)
        self._measured_through = max(self._measured_through, asking.round)
        _keep_latest(self._measured)
        early = self._results.pop(asking.round, None)
        if early is not None:
            self._apply(*early)
            return []  # the round is closed: a report now would count in no average
        if not asking.report:
            return []
        server = None if asking.server == asking.master else asking.server
        report = FleetReport(
            self.name, asking.epoch, asking.round, -best.offset_s, best.delay_s, server
        )
        return [Publish(self.topics.fleet_report(self.name), self.seal(report.encode()))]

    def _result(self, message: Inbound) -> None:
        result = self.receive(message, FleetResult)
        if result is None or not self._follow(result.master, result.epoch, message.received_mono):
            return
        if result.round <= self._corrected_through:
            return
        if result.round in self._measured:
            self._apply(result, message.received_mono)
            return
        waiting = [ask for ask in (self._asking, self._due) if ask is not None]
        if any(ask.round == result.round for ask in waiting):
            # Its exchange ends after the round closed: kept for when the answer comes.
            self._results[result.round] = (result, message.received_mono)
            _keep_latest(self._results)

    def _apply(self, result: FleetResult, received_mono: int) -> None:
        measured = self._measured.get(result.round)
        if measured is None:
            return  # a round this node did not measure (it joined late, say)
        asking, sample = measured
        if (asking.master, asking.epoch) != (result.master, result.epoch):
            return
        from_leader = sample.peer == result.master
        needed = (_from_leader if from_leader else _from_standby)(result, sample)
        if needed is None:
            log.info(
                "%s: %s answered while its clock was not round %d's",
                self.name,
                sample.peer,
                result.round,
            )
            return
        correction_s, bound_s = needed
        rate_before_ppm = self.tracking.reference_ppm
        correction = Measured(
            correction_s,
            sample.adjusted_ns,
            sample.arrived_mono,
            sample.delay_s,
            bound_s,
            reference=_leader_steering(result, sample, received_mono, rate_before_ppm),
        )
        if not self.apply_correction(correction):
            return
        self.corrected += 1
        self._corrected_through = result.round
        for rounds in (self._measured, self._results):
            for number in [number for number in rounds if number <= result.round]:
                del rounds[number]


def _keep_latest(rounds: dict[int, Any]) -> None:
    """Keep the OPEN_ROUNDS latest rounds' entries."""
    while len(rounds) > OPEN_ROUNDS:
        del rounds[min(rounds)]


def _leader_steering(
    result: FleetResult, sample: Sample, received_mono: int, rate_before_ppm: float | None
) -> Reference | None:
    """How the leader steers, as the result says (it arrived at `received_mono`), or None
    if it does not.  The leader's adjustment at the exchange is taken back from the round's
    end at the rate it ran at before (`rate_before_ppm`, as the last result said; that of
    this one if none did)."""
    now_s, rate_ppm, applied = result.reference_now_s, result.frequency_ppm, result.applied
    if now_s is None or rate_ppm is None or applied is None:
        return None
    now_ns = round(now_s * NS_PER_S)
    before_ppm = rate_ppm if rate_before_ppm is None else rate_before_ppm
    back_ns = before_ppm * 1e-6 * (applied - sample.exchange.t3)  # on clocks near the leader's
    return Reference(round(now_ns - back_ns), received_mono, now_ns, rate_ppm)


def _from_standby(result: FleetResult, sample: Sample) -> tuple[float, float] | None:
    """The correction, and its bound, that an answer from a standby master gives: the
    offset measured to the standby, less the standby's offset from the leader (as the round
    measured it), plus the round's average.  The bound adds the standby's offset's own and
    how far the standby may have drifted from the leader between that measurement and its
    answer.  None when the result does not measure that standby."""
    server = next((entry for entry in result.servers if entry.name == sample.peer), None)
    if server is None:
        return None
    # Both instants are on clocks within the standby's offset of the leader's.
    apart_s = abs(sample.exchange.t3 - server.measured) / NS_PER_S + abs(server.offset_s)
    bound_s = sample.error_bound_s + server.bound_s + server.rate_ppm * 1e-6 * apart_s
    return sample.offset_s - server.offset_s + result.average_s, bound_s


def _from_leader(result: FleetResult, sample: Sample) -> tuple[float, float] | None:
    """The correction, and its bound, that the leader's answer gives: the offset measured
    plus the round's average if the leader answered before correcting itself for the round
    (the usual case), plus nothing if it received the request once it had (the exchange
    ended after the round closed: the leader's clock is the average already), None if in
    between.  θ's bound is how far this clock may be from the leader's once both have
    slewed the round's average in."""
    exchange = sample.exchange
    if result.applied is None or exchange.t3 <= result.applied:
        return sample.offset_s + result.average_s, sample.error_bound_s
    if result.slewed is not None and exchange.t2 >= result.slewed:
        return sample.offset_s, sample.error_bound_s
    return None
