"""The Berkeley master role: a round every interval, through the broker.

The nodes to poll are the Berkeley nodes whose retained status says online, as far as they
answer (clocksync.master.membership): a round polls the nodes that answered lately, and
probes a few of the silent ones, so no flood of statuses can swell a round.
A round: send each node `samples` polls on its own poll topic, paced evenly through the
round (see clocksync.master.rounds for why not one broadcast poll); collect replies until
the reply timeout; per node keep the lowest-delay exchange; average with the master's own
clock (fault-tolerant, see clocksync.core.selection); send every node that answered its own
correction; apply the master's own; publish the round summary.  A poll's t1 is its send
instant, which the runner reports back (`sent`).
Unless told not to, the master also answers Cristian time requests (master.timeserver).
"""

import logging
from collections.abc import Hashable
from dataclasses import dataclass

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.master.membership import MAX_LISTED, Membership, Polling
from clocksync.master.rounds import RoundCollector, RoundPlan, settle
from clocksync.master.timeserver import TimeResponder
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Correction, Poll, Reply, RoundSummary, Status
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import Participant, clip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollSent:
    """The tag of a poll, so that its send instant can be recorded as its t1."""

    round: int
    node: str
    seq: int


class BerkeleyMaster(Participant):
    """The time daemon's master, its own clock included in every average."""

    kind = RoleKind.MASTER
    sync = SyncMode.BERKELEY

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        plan: RoundPlan,
        status_interval_s: float | None = None,
        timeserver: bool = True,
        keys: Keys = NO_KEYS,
    ) -> None:
        super().__init__(
            name=name,
            site=site,
            clock=clock,
            status_interval_s=status_interval_s or plan.interval_s,
            keys=keys,
        )
        self.epoch = clock.host_ns() // 1_000_000
        self.responder = (
            TimeResponder(self, disciplined=True, epoch=self.epoch) if timeserver else None
        )
        self.plan = plan
        self._interval_ns = round(plan.interval_s * NS_PER_S)
        self._timeout_ns = round(plan.timeout_s * NS_PER_S)
        self.membership = Membership()
        self._polling: Polling | None = None
        self._late_replies = 0
        self._round: RoundCollector | None = None
        self._next_round = 0
        self._last_number = 0

    def subscriptions(self) -> list[str]:
        own = [self.topics.all_replies, self.topics.all_status]
        return own if self.responder is None else [*own, self.topics.cristian_requests_shared]

    def connected(self, mono: int) -> None:
        """Wait an interval before the next round, so that the nodes' retained statuses
        (the list of nodes to poll) have arrived."""
        self._next_round = max(self._next_round, mono + self._interval_ns)
        self._work_due = self._next_round

    def tick(self, mono: int) -> tuple[list[Publish], int]:
        """Start, poll and close rounds as they fall due; a loop, not recursion, because a
        master that fell behind may owe thousands of polls at once."""
        actions: list[Publish] = []
        while True:
            collector = self._round
            if collector is None:
                if mono < self._next_round:
                    return actions, self._next_round
                self._start_round(mono)
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

    def handle(self, message: Inbound) -> list[Publish]:
        if message.topic.endswith("/status"):
            self._track(message)
            return []
        if self.responder is not None and message.topic == self.topics.cristian_request:
            return self.responder.answer(message)
        self._collect(message)
        return []

    def sent(self, tag: Hashable, mono: int | None) -> None:
        collector = self._round
        if isinstance(tag, PollSent) and collector is not None and collector.number == tag.round:
            collector.poll_sent(
                tag.node, tag.seq, None if mono is None else self.clock.reading_at(mono)
            )

    def _track(self, message: Inbound) -> None:
        """Keep the membership: Berkeley nodes whose status says online; an empty retained
        status (MQTT's way of deleting one) takes a node out."""
        if not message.payload:
            name = self.topics.name_in(message.topic)
            if name is not None:
                self.membership.forget(name)
            return
        status = self.receive(message, Status)
        if status is None:
            return
        serving = (
            status.role == RoleKind.NODE
            and status.sync == self.sync
            and status.state == State.ONLINE
        )
        self.membership.announce(status.name, serving=serving)

    def _collect(self, message: Inbound) -> None:
        t4 = self.clock.reading_at(message.received_mono)
        reply = self.receive(message, Reply)
        if reply is None:
            return
        round_ = self._round
        if round_ is None or (reply.epoch, reply.round) != (self.epoch, round_.number):
            self._late_replies += 1  # to a round already closed, mostly: counted, not logged
            return
        refusal = round_.add_reply(reply, t4)
        if refusal is not None:
            log.warning("dropped a reply from %s: %s", reply.node, refusal)

    def _start_round(self, mono: int) -> None:
        self._last_number += 1
        polling = self._polling = self.membership.plan(self._last_number)
        self._round = RoundCollector(
            self.name,
            self.epoch,
            self._last_number,
            polling.live,
            samples=self.plan.samples,
            probes=polling.probes,
            started_mono=mono,
            adjusted_at_start=self.clock.adjusted_ns(mono),
        )
        if mono - self._next_round > self._interval_ns:
            self._next_round = mono + self._interval_ns
        else:
            self._next_round += self._interval_ns

    def _poll(self, collector: RoundCollector) -> Publish:
        node, seq = collector.next_poll()
        payload = self.seal(Poll(self.name, node, self.epoch, collector.number, seq).encode())
        return Publish(self.topics.poll(node), payload, tag=PollSent(collector.number, node, seq))

    def _finish_round(self, collector: RoundCollector) -> list[Publish]:
        self._round = None
        samples = collector.best_samples()
        outcome = settle(self.name, samples, min_window_s=self.plan.min_window_s)
        actions = [
            Publish(
                self.topics.correction(node),
                self.seal(
                    Correction(
                        self.name,
                        node,
                        self.epoch,
                        collector.number,
                        sample.seq,
                        outcome.corrections[node],
                    ).encode()
                ),
            )
            for node, sample in samples.items()
        ]
        if samples:
            self.apply_correction(outcome.corrections[self.name], collector.adjusted_at_start)
        assert self._polling is not None
        closed = self.membership.close(collector.number, self._polling, collector.answered())
        missing = closed.missing
        summary = RoundSummary(
            master=self.name,
            epoch=self.epoch,
            round=collector.number,
            started=self.clock.reading_at(collector.started_mono),
            average_s=outcome.selection.average_s,
            window_s=outcome.selection.window_s,
            spread_s=outcome.spread_s,
            participants=outcome.entries,
            missing=missing[:MAX_LISTED],
            missing_count=len(missing),
        )
        actions.append(Publish(self.topics.round, self.seal(summary.encode()), retain=True, qos=1))
        excluded = ", ".join(sorted(outcome.selection.excluded)) or "none"
        log.info(
            "round %d: %d nodes, %d probed, spread %.6f s, excluded %s, %d missing%s%s%s",
            collector.number,
            len(samples),
            len(collector.probes),
            outcome.spread_s,
            clip(excluded),
            len(missing),
            f" ({clip(', '.join(missing))})" if missing else "",
            f", {self.membership.joined} joined" if self.membership.joined else "",
            f", {len(closed.gone)} left" if closed.gone else "",
        )
        if self._late_replies:
            log.info("dropped %d late replies, to rounds already closed", self._late_replies)
        self.membership.joined = self._late_replies = 0
        return actions
