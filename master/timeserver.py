"""The Cristian time server: answers "what time is it?" with its owner's clock.

The Berkeley master answers by default (its clock is the fleet's); `clocksync timeserver`
runs the responder alone, as the bank's reference clock.  It keeps no state per client, so
one server answers any number of them: the client's echoed send time and correlation data
are all that ties an answer to its request.

t2 is the arrival instant of the request (the kernel's receive timestamp over MQTT); t3 is
written into the answer by whatever sends it, just before the send system call (one-step,
see clocksync.protocol.envelope.Publish): the server's own time in between drops out of the
client's measurement, and no encoding or library time sits after t3.  An answer goes only to
the reply topic of the client the request names, so no one can have the server publish
elsewhere in the tree.  It carries the request's correlation data in its payload too, so
that a server with a key seals the client's nonce with its timestamps (as Roughtime does)
and a captured answer cannot be replayed.
"""

import logging
from collections.abc import Callable

from clocksync.core.clock import SoftwareClock
from clocksync.protocol.enums import RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import TimeRequest, TimeResponse
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.protocol.wire import MAX_CORRELATION
from clocksync.roles.participant import Participant, clip

log = logging.getLogger(__name__)

ANSWER_EXPIRY_S = 1
"""An answer the broker could not deliver within this is worthless: its delay is too long."""


class TimeResponder:
    """Answers the time requests of a site for `owner`, from `owner`'s clock.

    `disciplined`: the owner's clock takes corrections, so it may start slewing at any
    moment; the rate bound sent with every answer says so.
    """

    def __init__(self, owner: Participant, *, disciplined: bool, epoch: int) -> None:
        self.owner = owner
        self.disciplined = disciplined
        self.epoch = epoch

    def answer(
        self,
        message: Inbound,
        *,
        fleet: bool = False,
        refusal: Callable[[TimeRequest], str | None] | None = None,
    ) -> list[Publish]:
        """The answer to a time request, or nothing (the reason logged); a `fleet` node's
        is answered on its fleet answer topic, and must be asked from its own topic.
        `refusal` says why the owner's clock may not answer this request now, if so."""
        owner = self.owner
        received = owner.clock.reading_at(message.received_mono)
        request = owner.receive(message, TimeRequest)
        if request is None:
            return []
        correlation = request.correlation or message.correlation
        if correlation is not None and not 0 < len(correlation) <= MAX_CORRELATION:
            log.warning("dropped a time request from %s: odd correlation data", request.client)
            return []
        reply_to = message.response_topic or request.reply_to
        topics = owner.topics
        if fleet and topics.name_in(message.topic) != request.client:
            log.warning("dropped a time request from %s on another's topic", request.client)
            return []
        expected = (
            topics.fleet_answer(request.client) if fleet else topics.cristian_reply(request.client)
        )
        if reply_to != expected:
            log.warning(
                "dropped a time request from %s: it asks for answers on %s, not %s",
                request.client,
                clip(reply_to),
                expected,
            )
            return []
        refused = None if refusal is None else refusal(request)
        if refused is not None:
            log.debug("left a time request from %s unanswered: %s", request.client, refused)
            return []
        response = TimeResponse(
            server=owner.name,
            client=request.client,
            epoch=self.epoch,
            echo=request.sent,
            received=received,
            rate_ppm=owner.clock.rate_error_ppm(may_slew=self.disciplined),
            sent=0,
            correlation=correlation,
        )
        payload = response.encode_for_send_time()
        if owner.signer is not None:
            payload = owner.signer.seal_later(payload)
        return [
            Publish(
                reply_to,
                payload,
                correlation=message.correlation,
                expiry_s=ANSWER_EXPIRY_S,
            )
        ]


class TimeServer(Participant):
    """A reference clock that only answers time requests and never corrects itself."""

    kind = RoleKind.TIMESERVER
    sync = SyncMode.REFERENCE

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        status_interval_s: float = 1.0,
        keys: Keys = NO_KEYS,
    ) -> None:
        super().__init__(
            name=name, site=site, clock=clock, status_interval_s=status_interval_s, keys=keys
        )
        self.responder = TimeResponder(self, disciplined=False, epoch=clock.host_ns() // 1_000_000)

    def subscriptions(self) -> list[str]:
        return [self.topics.cristian_requests_shared]

    def handle(self, message: Inbound) -> list[Publish]:
        return self.responder.answer(message)
