"""The Cristian time server: answers "what time is it?" with its owner's clock.

The Berkeley master answers by default (its clock is the fleet's); `clocksync timeserver`
runs the responder alone, as the bank's reference clock.  It keeps no state per client, so
one server answers any number of them: the client's echoed send time and correlation data
are all that ties an answer to its request.

t2 is the kernel's receive timestamp of the request; t3 is written into the answer by the
transport just before the send system call (one-step): the server's own time in between
drops out of the client's measurement, and no encoding or library time sits after t3.  An
answer goes only to the reply topic of the client the request names, so no one can have
the server publish elsewhere in the tree.
"""

import logging
import time

from clocksync.clock import NS_PER_S, SoftwareClock
from clocksync.messages import TimeRequest, TimeResponse
from clocksync.participant import Participant
from clocksync.transport import BrokerUrl, Inbound

log = logging.getLogger(__name__)

ANSWER_EXPIRY_S = 1
"""An answer the broker could not deliver within this is worthless: its delay is too long."""
BUSY_POLL_S = 0.002
"""A client's next request usually comes within this of the last answer (see Participant)."""


class TimeResponder:
    """Answers the time requests of a site for `owner`, from `owner`'s clock.

    `disciplined`: the owner's clock takes corrections, so it may start slewing at any
    moment; the rate bound sent with every answer says so.
    """

    def __init__(self, owner: Participant, *, disciplined: bool, epoch: int) -> None:
        self.owner = owner
        self.disciplined = disciplined
        self.epoch = epoch

    @property
    def subscription(self) -> str:
        return self.owner.topics.cristian_request

    def answer(self, message: Inbound) -> None:
        owner = self.owner
        received = owner.clock.reading_at(message.received_mono)
        request = owner.receive(message, TimeRequest)
        if request is None:
            return
        reply_to = message.response_topic or request.reply_to
        expected = owner.topics.cristian_reply(request.client)
        if reply_to != expected:
            log.warning(
                "dropped a time request from %s: it asks for answers on %r, not %r",
                request.client,
                reply_to,
                expected,
            )
            return
        response = TimeResponse(
            server=owner.name,
            client=request.client,
            epoch=self.epoch,
            echo=request.sent,
            received=received,
            rate_ppm=owner.clock.rate_error_ppm(may_slew=self.disciplined),
            sent=0,
            correlation=request.correlation,
        )
        owner.link.publish(
            reply_to,
            response.encode_for_send_time(),
            correlation=message.correlation,
            expiry_s=ANSWER_EXPIRY_S,
        )


class TimeServer(Participant):
    """A reference clock that only answers time requests and never corrects itself."""

    role = "timeserver"
    sync = "reference"

    def __init__(
        self,
        *,
        name: str,
        site: str,
        broker: BrokerUrl,
        clock: SoftwareClock,
        status_interval_s: float = 1.0,
        busy_poll_s: float = BUSY_POLL_S,
    ) -> None:
        self.responder = TimeResponder(self, disciplined=False, epoch=time.time_ns() // 1_000_000)
        super().__init__(
            name=name,
            site=site,
            broker=broker,
            clock=clock,
            status_interval_s=status_interval_s,
            busy_poll_s=busy_poll_s,
        )

    def subscriptions(self) -> list[str]:
        return [self.responder.subscription]

    def handle(self, message: Inbound) -> None:
        self.responder.answer(message)

    def tick(self, mono: int) -> int:
        """Nothing is timed but the status heartbeat, which is the loop's."""
        return mono + NS_PER_S
