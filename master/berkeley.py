"""The Berkeley master role: it leads its site's rounds, or stands by to.

Several masters may run for a site; one leads at a time (clocksync.master.election).  The
leader runs the rounds (clocksync.master.leading).  A standby follows them as any node does
(clocksync.nodes.berkeley.Follower), so its clock keeps the site's time and it takes over
without a jump.  A master's status carries its priority, which makes it a candidate, and
names the leader; when it takes the lead it publishes the retained leader record with its
new term.  Unless told not to, a master also answers Cristian time requests
(clocksync.master.timeserver), once its clock has the site's time: as leader after its first
round, as a standby after its first correction.  A standby answers the fleet's asks for
the leader when the leader's tick names it (clocksync.nodes.fleet).
"""

import logging
from collections.abc import Hashable

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.core.tracking import SPIKE_MIN_POINTS
from clocksync.master.election import Election, Record
from clocksync.master.leading import Leading
from clocksync.master.membership import Membership
from clocksync.master.rounds import RoundPlan
from clocksync.master.timeserver import TimeResponder
from clocksync.nodes.berkeley import Follower
from clocksync.nodes.leadership import believable
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Leader, RoundSummary, Status, TimeRequest
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import SKEW_SIGMAS, WANDER_PPM, Participant

log = logging.getLogger(__name__)

PARTICIPATING = (RoleKind.NODE, RoleKind.MASTER)
FLEET_STATUS = b'"sync": "fleet"'
"""A fleet node's status, as clocksync writes it: it has nothing for a master (fleet nodes
are neither polled nor candidates) and thousands come a minute, so it is not decoded,
unless its name is a member still (a node that was polled before)."""


class BerkeleyMaster(Participant):
    """The time daemon's master, its own clock included in every average it leads."""

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
        priority: int = 0,
    ) -> None:
        super().__init__(
            name=name,
            site=site,
            clock=clock,
            status_interval_s=status_interval_s or plan.interval_s,
            keys=keys,
        )
        self.plan = plan
        self._priority = priority
        self._interval_ns = round(plan.interval_s * NS_PER_S)
        self.epoch = clock.host_ns() // 1_000_000
        """This master's incarnation: its start, in ms."""
        self.responder = (
            TimeResponder(self, disciplined=True, epoch=self.epoch) if timeserver else None
        )
        self.fleet_responder = TimeResponder(self, disciplined=True, epoch=self.epoch)
        """Answers the fleet nodes' asks: for itself while it leads (clocksync.master.fleet),
        for the leader while it stands by and the leader names it among the fleet's servers."""
        self._fleet_asks = self.topics.fleet_asks_to(name)[:-1]
        self._fleet_reports = self.topics.all_fleet_reports[:-1]
        self.membership = Membership()
        self.standbys: dict[str, float] = {}
        """The standby masters that follow this one and may answer its fleet's asks: per
        name, how fast its clock may drift off its frequency line, in ppm (its status's)."""
        self.follower = Follower(self)
        self.election: Election | None = None
        self.leading: Leading | None = None
        self._last_summary: RoundSummary | None = None
        self._announce = False
        self._led_since = 0
        """This master's clock when it last took the lead."""

    def subscriptions(self) -> list[str]:
        topics = self.topics
        own = [
            topics.all_replies,
            topics.all_status,
            topics.round,
            topics.fleet_asks_to(self.name),
            topics.all_fleet_reports,
            *self.follower.subscriptions(),
        ]
        return own if self.responder is None else [*own, topics.cristian_requests_shared]

    def priority(self) -> int:
        return self._priority

    def leader_name(self) -> str | None:
        if self.leading is not None:
            return self.name
        leader = self.follower.leader
        return None if leader is None else leader[0]

    def frequency_error_ppm(self) -> float | None:
        """A leader's frequency is the ensemble's (clocksync.master.ensemble), a standby's
        its history's."""
        if self.leading is None:
            return super().frequency_error_ppm()
        estimate = self.leading.ensemble.estimate
        return estimate.skew * 1e6 if estimate.known else None

    @property
    def in_sync(self) -> bool:
        """Whether this master's clock has the site's time, so that it may serve it."""
        if self.leading is not None:
            return self.leading.rounds_done > 0
        return self.follower.corrected > 0

    def connected(self, mono: int) -> None:
        """Listen before leading or serving (see clocksync.master.election).  A leader
        announces itself again: a broker that restarted without persistence lost the
        retained leader record."""
        if self.election is None:
            self.election = Election(self.name, self._priority, self.epoch, self._interval_ns, mono)
        elif self.leading is not None:
            self._announce = True
            self.work_now()

    def tick(self, mono: int) -> tuple[list[Publish], int]:
        election = self.election
        if election is None:
            return [], mono + self._interval_ns
        leader = election.leader(mono)
        actions: list[Publish] = []
        if leader == self.name:
            record = election.record
            if (
                self.leading is None
                or record is None
                or record != Record(self.name, self.leading.epoch)
            ):
                self._take_over(election, mono)
            assert self.leading is not None
            if self._announce:
                actions.append(self._leader_record())
            work, due = self.leading.tick(mono)
            return [*actions, *work], min(due, mono + self._interval_ns)
        if self.leading is not None:
            log.warning("%s stands by: %s leads now", self.name, leader)
            self.leading = None
        return actions, mono + self._interval_ns // 4

    def handle(self, message: Inbound) -> list[Publish]:
        topics = self.topics
        topic = message.topic
        if topic.startswith(self._fleet_asks):
            if self.leading is None:
                return self.fleet_responder.answer(
                    message, fleet=True, refusal=self._refusal_to_answer
                )
            self.leading.fleet_ask()
            return self.fleet_responder.answer(message, fleet=True)
        if topic.endswith("/status"):
            self._track(message)
        elif topic == topics.round:
            self._heard(message)
        elif topic == topics.cristian_request:
            if self.responder is not None and self.in_sync:
                return self.responder.answer(message)
        elif topic == topics.leader:
            self.follower.handle(message)
            record = self.receive(message, Leader) if message.payload else None
            if record is not None and self.election is not None:
                self._learn_leader(Record(record.leader, record.epoch), message.received_mono)
        elif self.follower.handles(topic):
            if self.leading is None:
                answers = self.follower.handle(message)
                self._heard_poll(topic, answers, message.received_mono)
                return answers
        elif self.leading is not None:  # a standby leaves the rounds' traffic to the leader
            if topic.startswith(self._fleet_reports):
                self.leading.fleet_report(message)
            else:
                self.leading.collect(message)
        return []

    def sent(self, tag: Hashable, mono: int | None) -> None:
        if self.leading is not None:
            self.leading.sent(tag, mono)
        self.follower.sent(tag, mono)

    def _take_over(self, election: Election, mono: int) -> None:
        """Lead from the next round, in a new term, announced in the leader record; the
        nodes the last leader heard from are polled as live nodes at once."""
        record = election.claim(self.clock.host_ns() // 1_000_000)
        self.leading = Leading(self, self.plan, self.membership, record.term, self.standbys)
        self.leading.start(mono)
        self.follower.follow(self.name, record.term, mono)
        summary = self._last_summary
        if summary is not None:
            self.membership.seed(entry.name for entry in summary.participants)
        self._announce, self._led_since = True, self.clock.now_ns()
        log.warning("%s leads the site (term %d)", self.name, record.term)

    def _leader_record(self) -> Publish:
        """The retained record naming this master as leader, in its term."""
        assert self.leading is not None
        self._announce = False
        leader = Leader(self.name, self.leading.epoch, self._led_since)
        return Publish(self.topics.leader, self.seal(leader.encode()), retain=True, qos=1)

    def _track(self, message: Inbound) -> None:
        """Keep the membership (Berkeley nodes and standby masters whose status says online;
        an empty retained status, MQTT's way of deleting one, takes one out) and the
        candidates to lead (masters whose status says online)."""
        name = self.topics.name_in(message.topic)
        if FLEET_STATUS in message.payload and name not in self.membership:
            return  # see FLEET_STATUS
        if not message.payload:
            if name is not None and name != self.name:
                self.membership.forget(name)
                self.standbys.pop(name, None)
                if self.election is not None:
                    self.election.candidate(name, None)
            return
        status = self.receive(message, Status)
        if status is None or status.name == self.name:
            return
        online = status.sync == self.sync and status.state == State.ONLINE
        self.membership.announce(status.name, serving=online and status.role in PARTICIPATING)
        if status.role == RoleKind.MASTER and self.election is not None:
            self.election.candidate(status.name, status.priority if online else None)
        self._track_standby(status, online=online)

    def _track_standby(self, status: Status, *, online: bool) -> None:
        """A master that follows this one, with a frequency estimate of some standing, may
        answer the fleet for it (see clocksync.nodes.fleet)."""
        error_ppm = status.frequency_error_ppm
        if (
            online
            and status.role == RoleKind.MASTER
            and status.leader == self.name
            and error_ppm is not None
            and status.updates >= SPIKE_MIN_POINTS
        ):
            self.standbys[status.name] = SKEW_SIGMAS * error_ppm + WANDER_PPM
        else:
            self.standbys.pop(status.name, None)

    def _refusal_to_answer(self, request: TimeRequest) -> str | None:
        """Why this standby may not answer a fleet node's ask for the leader, or None."""
        if request.round is None:
            return "the ask names no round"
        return self.follower.refusal_to_answer(request.round)

    def _heard_poll(self, topic: str, answers: list[Publish], mono: int) -> None:
        """A poll this standby answered came from the leader it follows, alive: as the
        election's docstring has it, a leader's polls count as much as its summaries, and a
        standby polled eight times a round does not take over because three summaries in a
        row were lost."""
        leader, election = self.follower.leader, self.election
        polled = answers and topic == self.topics.poll(self.name)
        if polled and leader is not None and election is not None:
            election.heard(leader[0], leader[1], mono)

    def _heard(self, message: Inbound) -> None:
        """A round summary: the leader that sent it is alive, and leads in its term, which
        tells a leader cut off for a while that it was replaced; the last one's
        participants are the nodes to poll at once should this master take over."""
        summary = self.receive(message, RoundSummary) if message.payload else None
        if summary is None or summary.master == self.name:
            return
        self._last_summary = summary
        if self.election is not None:
            record = Record(summary.master, summary.epoch)
            self._learn_leader(record, message.received_mono)
            self.election.heard(summary.master, summary.epoch, message.received_mono)

    def _learn_leader(self, record: Record, mono: int) -> None:
        """A leader record, or a round summary standing for one, unless its term lies so
        far ahead that no later leader could outbid it."""
        assert self.election is not None
        if not believable(record.term, self.clock):
            log.warning("ignored %s's term %d: far ahead of this clock", record.leader, record.term)
            return
        self.election.leader_record(record, mono)
