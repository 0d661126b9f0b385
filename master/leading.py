"""The leader's duty: a round every interval, through the broker.

The nodes to poll are the Berkeley participants (nodes, and standby masters) whose retained
status says online, as far as they answer (clocksync.master.membership): a round polls the
nodes that answered lately, and probes a few of the silent ones, so no flood of statuses
can swell a round.  A round: send each node `samples` polls on its own poll topic, paced
evenly through the round (see clocksync.master.rounds for why not one broadcast poll);
collect replies until the reply timeout; per node keep the lowest-delay exchange; average
with the master's own clock (fault-tolerant, see clocksync.core.selection); send every node
that answered its own correction; apply the master's own; publish the round summary.  A
poll's t1 is its send instant, which the runner reports back.  Every poll, correction and
summary carries the leader's term (`epoch`).  A round also serves the fleet nodes, which
measure themselves against the leader (clocksync.master.fleet): a tick opens it for them (at
the end of the round before, so that they may ask all through the interval), and the
result, the round's average, closes it.
"""

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from clocksync.core.clock import NS_PER_S
from clocksync.core.sample import Sample
from clocksync.master.ensemble import Ensemble
from clocksync.master.fleet import MAX_SERVERS, FleetRound, report_share
from clocksync.master.membership import MAX_LISTED, Membership, Polling
from clocksync.master.rounds import SEND_SHARE, RoundCollector, RoundPlan, settle
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Correction, FleetReport, Poll, Reply, RoundSummary
from clocksync.roles.participant import Participant, clip

log = logging.getLogger(__name__)

ACQUIRE_ROUNDS = 3
"""In its first ACQUIRE_ROUNDS rounds a leader moves the site to each round's average in
full, as Berkeley's algorithm does; later only as far as the average is known
(clocksync.master.rounds.move_for)."""


@dataclass(frozen=True)
class PollSent:
    """The tag of a poll, so that its send instant can be recorded as its t1."""

    round: int
    node: str
    seq: int


@dataclass(frozen=True)
class Steering:
    """How the master's clock was steered at the end of a round: moved by `move_s` when its
    total adjustment stood at `adjusted_ns`, its frequency correction now `rate_ppm`."""

    move_s: float
    adjusted_ns: int
    rate_ppm: float

    @property
    def now_ns(self) -> int:
        """The master's total adjustment as the round ends, the move included."""
        return self.adjusted_ns + round(self.move_s * NS_PER_S)

    def at(self, sample: Sample) -> int:
        """The master's total adjustment at `sample`'s exchange, the move included."""
        return sample.adjusted_ns + round(self.move_s * NS_PER_S)


class Leading:
    """`owner`'s rounds while it leads, in term `epoch`."""

    def __init__(
        self,
        owner: Participant,
        plan: RoundPlan,
        membership: Membership,
        epoch: int,
        standbys: Mapping[str, float] | None = None,
    ) -> None:
        """`standbys`: the standby masters that may answer the fleet for this one, with
        their drift bounds in ppm (kept up to date by the owner)."""
        self.owner = owner
        self.standbys: Mapping[str, float] = {} if standbys is None else standbys
        self.plan = plan
        self.membership = membership
        self.epoch = epoch
        self.rounds_done = 0
        self._interval_ns = round(plan.interval_s * NS_PER_S)
        self._timeout_ns = round(plan.timeout_s * NS_PER_S)
        self._polling: Polling | None = None
        self._late_replies = 0
        self._round: RoundCollector | None = None
        self._fleet: FleetRound | None = None
        self._fleet_size = 0
        self._late_reports = 0
        self._next_round = 0
        self._last_number = 0
        self.ensemble = Ensemble(
            owner.name, owner.clock.frequency_ppm, owner.tracking.frequency_error_ppm
        )
        """The site's frequency, from its clocks' natural ones."""

    def start(self, mono: int) -> None:
        """The first round, one interval from now."""
        self._next_round = max(self._next_round, mono + self._interval_ns)

    def tick(self, mono: int) -> tuple[list[Publish], int]:
        """Start, poll and close rounds as they fall due; a loop, not recursion, because a
        master that fell behind may owe thousands of polls at once."""
        actions: list[Publish] = []
        while True:
            collector = self._round
            if collector is None:
                if mono < self._next_round:
                    return actions, self._next_round
                actions += self._start_round(mono)
            elif collector.polls_sent < collector.polls_due:
                pace_ns = round(self.plan.poll_pace_s(collector.polls_due) * NS_PER_S)
                next_poll = collector.started_mono + collector.polls_sent * pace_ns
                if mono < next_poll:
                    return actions, next_poll
                actions.append(self._poll(collector))
            else:
                close_at = collector.started_mono + self._timeout_ns
                if mono < close_at:
                    return actions, close_at
                actions += self._finish_round(collector)

    def sent(self, tag: Hashable, mono: int | None) -> None:
        collector = self._round
        if isinstance(tag, PollSent) and collector is not None and collector.number == tag.round:
            reading = None if mono is None else self.owner.clock.reading_at(mono)
            collector.poll_sent(tag.node, tag.seq, reading)

    def collect(self, message: Inbound) -> None:
        clock, mono = self.owner.clock, message.received_mono
        t4 = clock.reading_at(mono)
        reply = self.owner.receive(message, Reply)
        if reply is None:
            return
        round_ = self._round
        if round_ is None or (reply.epoch, reply.round) != (self.epoch, round_.number):
            self._late_replies += 1  # to a round already closed, mostly: counted, not logged
            return
        refusal = round_.add_reply(reply, t4, mono, clock.adjusted_ns(mono))
        if refusal is not None:
            log.warning("dropped a reply from %s: %s", reply.node, refusal)

    def fleet_ask(self) -> None:
        """A fleet node asked this leader's time (the caller answers it)."""
        if self._fleet is not None:
            self._fleet.asked += 1

    def fleet_report(self, message: Inbound) -> None:
        report = self.owner.receive(message, FleetReport)
        if report is None:
            return
        fleet = self._fleet
        if fleet is None or (report.epoch, report.round) != (self.epoch, fleet.number):
            self._late_reports += 1
            return
        refusal = fleet.add_report(report)
        if refusal is not None:
            log.warning("dropped a report from %s: %s", report.node, refusal)

    def _start_round(self, mono: int) -> list[Publish]:
        """Open the next round; return the fleet's tick for it, unless the last round's
        end gave it already."""
        self._last_number += 1
        polling = self._polling = self.membership.plan(self._last_number)
        self._round = RoundCollector(
            self.owner.name,
            self.epoch,
            self._last_number,
            polling.live,
            samples=self.plan.samples,
            probes=polling.probes,
            started_mono=mono,
            adjusted_at_start=self.owner.clock.adjusted_ns(mono),
        )
        if mono - self._next_round > self._interval_ns:
            self._next_round = mono + self._interval_ns
        else:
            self._next_round += self._interval_ns
        if self._fleet is not None and self._fleet.number == self._last_number:
            return []
        return [self._open_fleet_round(self._last_number, 0.0, SEND_SHARE * self.plan.timeout_s)]

    def _open_fleet_round(
        self, number: int, settle_s: float, window_s: float, servers: tuple[str, ...] = ()
    ) -> Publish:
        """Round `number`'s fleet part, from now: its tick."""
        fleet = self._fleet = FleetRound(
            self.owner.name, self.epoch, number, report_share(self._fleet_size), servers
        )
        tick = fleet.tick(settle_s, window_s)
        return Publish(self.owner.topics.fleet_tick, self.owner.seal(tick.encode()))

    def _next_fleet_round(self, polled: Mapping[str, Sample]) -> Publish:
        """Open the next round's fleet part now, as this one closes: the fleet then has the
        whole interval to ask in, not only the polls' share of the round, so that ten
        thousand asks do not come in one burst.  The fleet asks once this clock has slewed
        its own correction in (its clock is the same from then until the next round's end),
        and before the next round's polls are done, so that the reports come in time.  It
        asks the standby masters this round `polled`, if any, and the leader only if none:
        the leader has the rounds to run, and a standby nothing else to do."""
        clock = self.owner.clock
        now = clock.monotonic_ns()
        settle_s = max(0, (clock.slew_end_mono() or now) - now) / NS_PER_S
        polls_done = self._next_round + round(SEND_SHARE * self.plan.timeout_s * NS_PER_S)
        servers = tuple(name for name in sorted(polled) if name in self.standbys)
        return self._open_fleet_round(
            self._last_number + 1,
            settle_s,
            (polls_done - now) / NS_PER_S,
            servers[:MAX_SERVERS],
        )

    def _correction(
        self, collector: RoundCollector, node: str, sample: Sample, steering: Steering
    ) -> Publish:
        """`node`'s correction: to where the master's clock is now, by `sample`, the
        round's best exchange with it; with the master's steering, so that the node follows
        it exactly and filters only its own measurements (clocksync.core.tracking)."""
        owner = self.owner
        correction = Correction(
            owner.name,
            node,
            self.epoch,
            collector.number,
            sample.seq,
            steering.move_s - sample.offset_s,
            sample.delay_s,
            steering.at(sample) / NS_PER_S,
            steering.now_ns / NS_PER_S,
            steering.rate_ppm,
        )
        return Publish(owner.topics.correction(node), owner.seal(correction.encode()))

    def _learn_rates(self, collector: RoundCollector, samples: Mapping[str, Sample]) -> None:
        """Give the ensemble each polled clock's free-running offset from the master's:
        the measured offset less the node's total adjustment, plus the master's."""
        for node, sample in samples.items():
            adjusted_s = collector.node_adjusted_s(sample)
            if adjusted_s is None:
                continue
            free_ns = (
                round(sample.offset_s * NS_PER_S)
                - round(adjusted_s * NS_PER_S)
                + sample.adjusted_ns
            )
            delay_ns = round(sample.delay_s * NS_PER_S)
            self.ensemble.add(node, sample.arrived_mono, free_ns, delay_ns)

    def _poll(self, collector: RoundCollector) -> Publish:
        node, seq = collector.next_poll()
        payload = self.owner.seal(
            Poll(self.owner.name, node, self.epoch, collector.number, seq).encode()
        )
        return Publish(
            self.owner.topics.poll(node),
            payload,
            tag=PollSent(collector.number, node, seq),
            nudge=True,
        )

    def _finish_round(self, collector: RoundCollector) -> list[Publish]:
        self._round = None
        fleet, self._fleet = self._fleet, None
        assert fleet is not None
        self._fleet_size = fleet.fleet_size()
        self.rounds_done += 1
        samples = collector.best_samples()
        reported = fleet.offsets(samples)
        outcome = settle(
            self.owner.name,
            samples,
            min_window_s=self.plan.min_window_s,
            fleet=reported,
            acquiring=self.rounds_done <= ACQUIRE_ROUNDS,
        )
        self._learn_rates(collector, samples)
        frequency_ppm = self.ensemble.update()
        clock = self.owner.clock
        before_mono = clock.monotonic_ns()
        before = clock.reading_at(before_mono)
        move_s, adjusted = outcome.move_s, clock.adjusted_ns(before_mono)
        if samples or reported:
            steered = self.owner.steer(
                move_s, collector.adjusted_at_start, collector.started_mono, frequency_ppm
            )
            move_s = move_s if steered else 0.0
        steering = Steering(move_s, adjusted, clock.frequency_ppm)
        actions = [
            self._correction(collector, node, sample, steering) for node, sample in samples.items()
        ]
        if fleet.asked or fleet.servers:
            average_s, rates = move_s, self.standbys
            if clock.stepped_since(before_mono):
                result = fleet.result(average_s, polled=samples, rates_ppm=rates)
            else:
                end = clock.slew_end_mono()
                slewed = clock.reading_at(end) if end is not None else clock.now_ns()
                result = fleet.result(
                    average_s,
                    before,
                    slewed,
                    polled=samples,
                    rates_ppm=rates,
                    steering=(steering.now_ns / NS_PER_S, steering.rate_ppm),
                )
            actions.append(
                Publish(self.owner.topics.fleet_result, self.owner.seal(result.encode()))
            )
        actions.append(self._next_fleet_round(samples))
        assert self._polling is not None
        closed = self.membership.close(collector.number, self._polling, collector.answered())
        for gone in closed.gone:
            self.ensemble.forget(gone)
        missing = closed.missing
        summary = RoundSummary(
            master=self.owner.name,
            epoch=self.epoch,
            round=collector.number,
            started=self.owner.clock.reading_at(collector.started_mono),
            average_s=outcome.selection.average_s,
            window_s=outcome.selection.window_s,
            spread_s=outcome.spread_s,
            participants=outcome.entries,
            missing=missing[:MAX_LISTED],
            missing_count=len(missing),
            fleet_asked=fleet.asked,
            fleet_reported=len(reported),
        )
        actions.append(
            Publish(self.owner.topics.round, self.owner.seal(summary.encode()), retain=True, qos=1)
        )
        excluded = ", ".join(sorted(outcome.selection.excluded)) or "none"
        log.info(
            "round %d: %d nodes, %d fleet (%d reported), %d probed, spread %.6f s, "
            "excluded %s, %d missing%s%s%s",
            collector.number,
            len(samples),
            fleet.asked,
            len(reported),
            len(collector.probes),
            outcome.spread_s,
            clip(excluded),
            len(missing),
            f" ({clip(', '.join(missing))})" if missing else "",
            f", {self.membership.joined} joined" if self.membership.joined else "",
            f", {len(closed.gone)} left" if closed.gone else "",
        )
        if self._late_replies or self._late_reports:
            log.info(
                "dropped %d late replies and %d late reports, to rounds already closed",
                self._late_replies,
                self._late_reports,
            )
        self.membership.joined = self._late_replies = self._late_reports = 0
        return actions
