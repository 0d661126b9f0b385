"""A node disciplined by Berkeley rounds: answers polls, applies its corrections.

Each reply also carries the precise send time of the node's previous reply in the round
(interleaved mode, see PreviousSend), which the runner reports back once the reply has left
(`sent`).  For each poll the node records its clock's total adjustment at the moment it
answered; the correction names the poll the master used, so the node subtracts whatever it
slewed since then and lands exactly where the master meant.

What the node accepts, so that neither a forged or replayed message nor a duplicate
delivery can corrupt a measurement or move the clock:

- it follows one master incarnation (name and epoch), the first it hears; another is
  followed only once the one followed has been silent for LEADER_SILENCE_NS;
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
from clocksync.protocol.enums import RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Correction, Poll, PreviousSend, Reply
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import Participant

log = logging.getLogger(__name__)

LEADER_SILENCE_NS = 10 * NS_PER_S
"""How long the master followed must be silent before another may lead this node."""
MAX_SEQ = 256
"""Polls per round a node answers at most (the master sends `--samples`, at most 64)."""
OPEN_ROUNDS = 4


@dataclass
class _Round:
    """A round this node has answered polls in: per poll answered, the clock's total
    adjustment at that moment, and when its latest reply really left."""

    adjusted_at_reply: dict[int, int] = field(default_factory=dict)
    previous: PreviousSend | None = None


@dataclass(frozen=True)
class ReplySent:
    """The tag of a reply, so that its send instant can ride on the next reply."""

    round: int
    seq: int


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
        self._leader: tuple[str, int] | None = None
        self._leader_heard = 0
        self._corrected_through = 0
        self._rounds: dict[int, _Round] = {}

    def subscriptions(self) -> list[str]:
        return [self.topics.poll(self.name), self.topics.correction(self.name)]

    @property
    def leader(self) -> tuple[str, int] | None:
        """The master (name, epoch) this node follows."""
        return self._leader

    def handle(self, message: Inbound) -> list[Publish]:
        if message.topic == self.topics.poll(self.name):
            return self._answer(message)
        self._correct(message)
        return []

    def sent(self, tag: Hashable, mono: int | None) -> None:
        if not isinstance(tag, ReplySent) or mono is None:
            return
        answered = self._rounds.get(tag.round)
        if answered is not None:
            answered.previous = PreviousSend(tag.seq, self.clock.reading_at(mono))

    def _answer(self, message: Inbound) -> list[Publish]:
        received = self.clock.reading_at(message.received_mono)
        poll = self.receive(message, Poll)
        if poll is None:
            return []
        if self.clock.stepped_since(message.received_mono):
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

        def stamp() -> int:
            """t3, and the clock's total adjustment at that same instant."""
            mono = self.clock.monotonic_ns()
            answering.adjusted_at_reply[poll.seq] = self.clock.adjusted_ns(mono)
            return self.clock.reading_at(mono)

        unsent = Reply(self.name, poll.epoch, poll.round, poll.seq, received, 0, answering.previous)
        payload = self.seal(unsent.encode_stamped(stamp))
        tag = ReplySent(poll.round, poll.seq)
        return [Publish(self.topics.reply(self.name), payload, tag=tag)]

    def _poll_refusal(self, poll: Poll, received_mono: int) -> str | None:
        """Why this poll is not answered, or None; a poll from a new master to follow
        resets the rounds."""
        master = (poll.master, poll.epoch)
        if master != self._leader:
            if self._leader is not None and received_mono - self._leader_heard < LEADER_SILENCE_NS:
                return f"{poll.master} (epoch {poll.epoch}) is not the master this node follows"
            self._leader, self._corrected_through = master, 0
            self._rounds.clear()
            log.info("following master %s (epoch %d)", poll.master, poll.epoch)
        self._leader_heard = received_mono
        if poll.round <= self._corrected_through:
            return "that round is already corrected"
        if poll.seq >= MAX_SEQ:
            return f"more than {MAX_SEQ} polls in a round"
        answered = self._rounds.get(poll.round)
        if answered is not None and poll.seq in answered.adjusted_at_reply:
            return "it was answered already (a replay or a duplicate)"
        return None

    def _correct(self, message: Inbound) -> None:
        correction = self.receive(message, Correction)
        if correction is None:
            return
        answered = self._rounds.get(correction.round)
        awaited = (
            (correction.master, correction.epoch) == self._leader
            and answered is not None
            and correction.round > self._corrected_through
            and correction.seq in answered.adjusted_at_reply
        )
        if answered is None or not awaited:
            log.warning(
                "dropped a correction for %s, round %d, poll %d: not one this node awaits",
                correction.node,
                correction.round,
                correction.seq,
            )
            return
        if not self.apply_correction(
            correction.correction_s, answered.adjusted_at_reply[correction.seq]
        ):
            return  # refused: the genuine correction, if this was a forgery, may still come
        self._corrected_through = correction.round
        for number in [number for number in self._rounds if number <= correction.round]:
            del self._rounds[number]
