"""A node disciplined by Berkeley rounds: answers polls, applies its corrections.

Each reply also carries the precise send time of the node's previous reply in the round
(interleaved mode, see PreviousSend), which the runner reports back once the reply has left
(`sent`).  For each poll the node records its clock's total adjustment at the moment it
answered; the correction names the poll the master used, so the node subtracts whatever it
slewed since then and lands exactly where the master meant.  A correction for a poll this
node did not answer in the current round (late, or another master's) is dropped, and so is
a second correction, or poll, for a round already corrected (a replay).
"""

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field

from clocksync.protocol.enums import RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Correction, Poll, PreviousSend, Reply
from clocksync.roles.participant import Participant, receive

log = logging.getLogger(__name__)


@dataclass
class _Round:
    """The round this node is answering: per poll answered, the clock's total adjustment
    at that moment; `corrected` once its correction is applied, so a replay is refused."""

    master: str
    epoch: int
    number: int
    adjusted_at_reply: dict[int, int] = field(default_factory=dict)
    corrected: bool = False
    previous: PreviousSend | None = None

    def is_for(self, master: str, epoch: int, number: int) -> bool:
        return (self.master, self.epoch, self.number) == (master, epoch, number)

    def supersedes(self, master: str, epoch: int, number: int) -> bool:
        """Whether a message for that round comes from this master after its time."""
        return (self.master, self.epoch) == (master, epoch) and number < self.number


@dataclass(frozen=True)
class ReplySent:
    """The tag of a reply, so that its send instant can ride on the next reply."""

    round: int
    seq: int


class BerkeleyNode(Participant):
    """One production line's clock."""

    kind = RoleKind.NODE
    sync = SyncMode.BERKELEY
    _current: _Round | None = None

    def subscriptions(self) -> list[str]:
        return [self.topics.poll(self.name), self.topics.correction(self.name)]

    def handle(self, message: Inbound) -> list[Publish]:
        if message.topic == self.topics.poll(self.name):
            return self._answer(message)
        self._correct(message)
        return []

    def sent(self, tag: Hashable, mono: int | None) -> None:
        current = self._current
        if (
            isinstance(tag, ReplySent)
            and mono is not None
            and current is not None
            and current.number == tag.round
        ):
            current.previous = PreviousSend(tag.seq, self.clock.reading_at(mono))

    def _answer(self, message: Inbound) -> list[Publish]:
        received = self.clock.reading_at(message.received_mono)
        poll = receive(message, Poll, self.topics)
        if poll is None:
            return []
        if self.clock.stepped_since(message.received_mono):
            log.info(
                "skipped poll %d of round %d: the clock stepped since it arrived",
                poll.seq,
                poll.round,
            )
            return []
        current = self._current
        if current is None or not current.is_for(poll.master, poll.epoch, poll.round):
            if current is not None and current.supersedes(poll.master, poll.epoch, poll.round):
                log.warning("dropped a stale poll for round %d", poll.round)
                return []
            current = self._current = _Round(poll.master, poll.epoch, poll.round)
        if current.corrected:
            log.warning("dropped a poll for round %d, which is already corrected", poll.round)
            return []
        answering = current

        def stamp() -> int:
            """t3, and the clock's total adjustment at that same instant."""
            mono = self.clock.monotonic_ns()
            answering.adjusted_at_reply[poll.seq] = self.clock.adjusted_ns(mono)
            return self.clock.reading_at(mono)

        unsent = Reply(self.name, poll.epoch, poll.round, poll.seq, received, 0, current.previous)
        payload = unsent.encode_stamped(stamp)
        tag = ReplySent(poll.round, poll.seq)
        return [Publish(self.topics.reply(self.name), payload, tag=tag)]

    def _correct(self, message: Inbound) -> None:
        correction = receive(message, Correction, self.topics)
        if correction is None:
            return
        current = self._current
        awaited = (
            current is not None
            and not current.corrected
            and current.is_for(correction.master, correction.epoch, correction.round)
            and correction.seq in current.adjusted_at_reply
        )
        if current is None or not awaited:
            log.warning(
                "dropped a correction for %s, round %d, poll %d: not one this node awaits",
                correction.node,
                correction.round,
                correction.seq,
            )
            return
        current.corrected = True
        self.apply_correction(correction.correction_s, current.adjusted_at_reply[correction.seq])
