"""A clock disciplined by Berkeley rounds: it answers the leader's polls and applies its
corrections.  A Berkeley node does nothing else; a standby master does it while another
leads (clocksync.master.berkeley).

Each reply also carries the precise send time of the previous reply in the round
(interleaved mode, see PreviousSend), which the runner reports back once the reply has left
(`sent`).  For each poll the follower records its clock's total adjustment at the moment it
answered; the correction names the poll the master used, so the follower subtracts whatever
it slewed since then and lands exactly where the master meant.

What it accepts, so that neither a forged or replayed message, a deposed leader nor a
duplicate delivery can corrupt a measurement or move the clock:

- it follows one leader (a name and a term; clocksync.nodes.leadership): the one the
  site's retained leader record names, or a poll's;
- it answers each poll once, and polls only for rounds after the last one corrected, with
  a sequence number below MAX_SEQ, keeping at most OPEN_ROUNDS rounds open: a poll naming a
  far-future round cannot make the real rounds look stale, and no flood of polls grows its
  memory;
- it applies a correction only for a poll it answered, in a round not yet corrected, and
  the clock's discipline refuses any correction beyond its maximum change in service (the
  round then stays open for the genuine correction, if that was a forgery).
"""

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.core.tracking import Reference
from clocksync.nodes.leadership import Followed, LeaderWatch
from clocksync.protocol.enums import RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Correction, Leader, Poll, PreviousSend, Reply
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import Measured, Participant

log = logging.getLogger(__name__)

MAX_SEQ = 256
"""Polls per round answered at most (a master sends `--samples`, at most 64)."""
OPEN_ROUNDS = 4


@dataclass
class _Round:
    """A round this follower has answered polls in: per poll answered, the clock's total
    adjustment at that moment and the moment (monotonic), and when its latest reply really
    left."""

    at_reply: dict[int, tuple[int, int]] = field(default_factory=dict)
    previous: PreviousSend | None = None
    slewing: bool = False
    """Whether the clock was slewing when it answered a poll of the round."""


@dataclass(frozen=True)
class ReplySent:
    """The tag of a reply, so that its send instant can ride on the next reply."""

    round: int
    seq: int


class Follower:
    """`owner`'s part in the leader's rounds: the topics it listens on, and what it does
    with polls, corrections and leader records."""

    def __init__(self, owner: Participant) -> None:
        self.owner = owner
        self.corrected = 0
        """Corrections applied from the leader followed now."""
        self._watch = LeaderWatch(owner.name, owner.clock)
        self._corrected_through = 0
        self._rounds: dict[int, _Round] = {}

    @property
    def leader(self) -> tuple[str, int] | None:
        """The leader (name, term) followed."""
        return self._watch.leader

    def subscriptions(self) -> list[str]:
        topics, name = self.owner.topics, self.owner.name
        return [topics.poll(name), topics.correction(name), topics.leader]

    def handles(self, topic: str) -> bool:
        return topic in self.subscriptions()

    def handle(self, message: Inbound) -> list[Publish]:
        topics = self.owner.topics
        if message.topic == topics.poll(self.owner.name):
            return self._answer(message)
        if message.topic == topics.leader:
            record = self.owner.receive(message, Leader) if message.payload else None
            if record is not None:
                self.follow(record.leader, record.epoch, message.received_mono)
            return []
        self._correct(message)
        return []

    def follow(self, master: str, term: int, mono: int) -> bool:
        """Follow `master` in `term`, if it is the leader followed, a newer one, or the one
        followed has fallen silent; say whether it is followed now."""
        followed = self._watch.follow(master, term, mono)
        if followed is Followed.SWITCHED:
            self._corrected_through, self.corrected = 0, 0
            self._rounds.clear()
            # Another leader's clock, or the same one restarted: its steering starts anew.
            self.owner.tracking.restart(self.owner.clock.frequency_ppm)
        return followed is not Followed.REFUSED

    def sent(self, tag: Hashable, mono: int | None) -> None:
        if not isinstance(tag, ReplySent) or mono is None:
            return
        answered = self._rounds.get(tag.round)
        if answered is not None:
            answered.previous = PreviousSend(tag.seq, self.owner.clock.reading_at(mono))

    def _answer(self, message: Inbound) -> list[Publish]:
        owner, clock = self.owner, self.owner.clock
        received = clock.reading_at(message.received_mono)
        poll = owner.receive(message, Poll)
        if poll is None:
            return []
        if clock.stepped_since(message.received_mono):
            log.info("skipped poll %d of round %d: the clock stepped since", poll.seq, poll.round)
            return []
        refusal = self._poll_refusal(poll, message.received_mono)
        if refusal is not None:
            log.warning("dropped poll %d of round %d: %s", poll.seq, poll.round, refusal)
            return []
        rounds = self._rounds
        answering = rounds.get(poll.round)
        if answering is None:
            answering = rounds[poll.round] = _Round()
            if len(rounds) > OPEN_ROUNDS:
                del rounds[min(rounds)]

        answering.slewing |= clock.slew_end_mono() is not None

        def stamp() -> int:
            """t3, and the clock's total adjustment at that same instant."""
            mono = clock.monotonic_ns()
            answering.at_reply[poll.seq] = (clock.adjusted_ns(mono), mono)
            return clock.reading_at(mono)

        unsent = Reply(
            owner.name,
            poll.epoch,
            poll.round,
            poll.seq,
            received,
            0,
            answering.previous,
            clock.adjusted_ns() / NS_PER_S,
        )
        payload = owner.seal(unsent.encode_stamped(stamp))
        tag = ReplySent(poll.round, poll.seq)
        return [Publish(owner.topics.reply(owner.name), payload, tag=tag, nudge=True)]

    def refusal_to_answer(self, round_number: int) -> str | None:
        """Why this clock may not answer a fleet node's ask for `round_number` in the
        leader's name, or None.  The leader measures this clock by the round's polls, and
        the fleet node takes that offset off what it measured: so the clock must have taken
        the round before's correction and not this one's, and neither slew nor have slewed
        while polled in this round (the offset the leader measured is then the one the
        answer carries, but for the drift between)."""
        if self.corrected == 0:
            return "not corrected by the leader yet"
        if round_number != self._corrected_through + 1:
            return f"its clock is in round {self._corrected_through + 1}"
        if self.owner.clock.slew_end_mono() is not None:
            return "its clock is slewing"
        answered = self._rounds.get(round_number)
        if answered is not None and answered.slewing:
            return "its clock was slewing when polled in the round"
        return None

    def _poll_refusal(self, poll: Poll, received_mono: int) -> str | None:
        """Why this poll is not answered, or None."""
        if not self.follow(poll.master, poll.epoch, received_mono):
            return f"{poll.master} (term {poll.epoch}) is not the leader followed"
        if poll.round <= self._corrected_through:
            return "that round is already corrected"
        if poll.seq >= MAX_SEQ:
            return f"more than {MAX_SEQ} polls in a round"
        answered = self._rounds.get(poll.round)
        if answered is not None and poll.seq in answered.at_reply:
            return "it was answered already (a replay or a duplicate)"
        return None

    def _correct(self, message: Inbound) -> None:
        correction = self.owner.receive(message, Correction)
        if correction is None:
            return
        answered = self._rounds.get(correction.round)
        awaited = (
            (correction.master, correction.epoch) == self._watch.leader
            and answered is not None
            and correction.round > self._corrected_through
            and correction.seq in answered.at_reply
        )
        if answered is None or not awaited:
            log.warning(
                "dropped a correction for %s, round %d, poll %d: not one awaited",
                correction.node,
                correction.round,
                correction.seq,
            )
            return
        adjusted, mono = answered.at_reply[correction.seq]
        measured = Measured(
            correction.correction_s,
            adjusted,
            mono,
            correction.delay_s,
            reference=_master_steering(correction, message.received_mono),
        )
        if not self.owner.apply_correction(measured):
            return  # refused: the genuine correction, if this was a forgery, may still come
        self.corrected += 1
        self._corrected_through = correction.round
        for number in [number for number in self._rounds if number <= correction.round]:
            del self._rounds[number]


def _master_steering(correction: Correction, received_mono: int) -> Reference | None:
    """How the master steers, as the correction says (it sent it as the round ended, and
    it arrived at `received_mono`), or None if it does not."""
    reference_s, now_s = correction.reference_s, correction.reference_now_s
    if reference_s is None or now_s is None or correction.frequency_ppm is None:
        return None
    return Reference(
        round(reference_s * NS_PER_S),
        received_mono,
        round(now_s * NS_PER_S),
        correction.frequency_ppm,
    )


class BerkeleyNode(Participant):
    """One production line's clock."""

    kind = RoleKind.NODE
    sync = SyncMode.BERKELEY

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        status_interval_s: float,
        keys: Keys = NO_KEYS,
    ) -> None:
        super().__init__(
            name=name, site=site, clock=clock, status_interval_s=status_interval_s, keys=keys
        )
        self.follower = Follower(self)

    @property
    def leader(self) -> tuple[str, int] | None:
        """The master (name, term) this node follows."""
        return self.follower.leader

    def subscriptions(self) -> list[str]:
        return self.follower.subscriptions()

    def handle(self, message: Inbound) -> list[Publish]:
        return self.follower.handle(message)

    def sent(self, tag: Hashable, mono: int | None) -> None:
        self.follower.sent(tag, mono)

    def leader_name(self) -> str | None:
        leader = self.follower.leader
        return None if leader is None else leader[0]
