"""A node disciplined by Berkeley rounds: answers polls, applies its corrections.

For each poll it records its clock's total adjustment at the moment it answered; the
correction names the poll the master used, so the node subtracts whatever it slewed since
then and lands exactly where the master meant.  A correction for a poll this node did not
answer in the current round (replayed, late, or another master's) is dropped.
"""

import logging

from clocksync.clock import NS_PER_S, SoftwareClock
from clocksync.messages import Correction, MessageError, Poll, Reply
from clocksync.participant import Participant
from clocksync.transport import BrokerUrl, Inbound

log = logging.getLogger(__name__)


class BerkeleyNode(Participant):
    """One production line's clock."""

    role = "node"
    sync = "berkeley"

    def __init__(
        self,
        *,
        name: str,
        site: str,
        broker: BrokerUrl,
        clock: SoftwareClock,
        status_interval_s: float,
    ) -> None:
        super().__init__(
            name=name, site=site, broker=broker, clock=clock, status_interval_s=status_interval_s
        )
        self._round: tuple[str, int, int] | None = None
        self._answered: dict[int, int] = {}

    def subscriptions(self) -> list[str]:
        return [self.topics.poll, self.topics.correction(self.name)]

    def tick(self, mono: int) -> int:
        """Nodes only react to messages; the status heartbeat is the loop's."""
        return mono + NS_PER_S

    def handle(self, message: Inbound) -> None:
        if message.topic == self.topics.poll:
            self._answer(message)
        else:
            self._correct(message)

    def _answer(self, message: Inbound) -> None:
        received = self.clock.reading_at(message.received_mono)
        try:
            poll = Poll.decode(message.payload)
        except MessageError as error:
            log.warning("dropped a bad poll: %s", error)
            return
        current = (poll.master, poll.epoch, poll.round)
        if current != self._round:
            if self._round is not None and current < self._round and current[:2] == self._round[:2]:
                log.warning("dropped a stale poll for round %d", poll.round)
                return
            self._round = current
            self._answered = {}
        self._answered[poll.seq] = self.clock.adjusted_ns()
        payload, _ = Reply.encode_stamped(
            node=self.name,
            epoch=poll.epoch,
            round=poll.round,
            seq=poll.seq,
            received=received,
            stamp=self.clock.now_ns,
        )
        self.link.publish(self.topics.reply(self.name), payload)

    def _correct(self, message: Inbound) -> None:
        try:
            correction = Correction.decode(message.payload)
        except MessageError as error:
            log.warning("dropped a bad correction: %s", error)
            return
        key = (correction.master, correction.epoch, correction.round)
        adjusted_then = self._answered.get(correction.seq) if key == self._round else None
        if correction.node != self.name or adjusted_then is None:
            log.warning(
                "dropped a correction for %s, round %d, poll %d: not one this node is waiting for",
                correction.node,
                correction.round,
                correction.seq,
            )
            return
        self._answered = {}
        self.apply_correction(correction.correction_s, adjusted_then)
