"""The Cristian client's side of an exchange, without I/O: `clocksync ask`, the Cristian
node, the tests and the benchmarks share it.

A request goes to the site's request topic with the client's own reply topic and fresh,
unguessable correlation data: as MQTT 5 properties, or in the payload on a 3.1.1
connection.  An answer is taken only if it matches an outstanding request (see
clocksync.nodes.requests).  t1 and t4 are kept on the host's monotonic clock and turned into
client-clock readings anchored at t4, so the client's own slews do not enter the
measurement.
"""

import logging
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from clocksync.core.clock import HOST_TOLERANCE_PPM, NS_PER_S, SoftwareClock
from clocksync.core.measurement import Exchange
from clocksync.core.sample import Sample
from clocksync.core.selection import lowest_delay, marzullo
from clocksync.nodes.requests import ANSWERED_BY_ANOTHER, Outstanding, PendingRequests
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Action, Inbound, Publish, Wake
from clocksync.protocol.messages import TimeRequest, TimeResponse
from clocksync.protocol.signing import TrustedKeys
from clocksync.protocol.topics import Topics
from clocksync.roles.participant import receive
from clocksync.roles.role import PassiveRole

log = logging.getLogger(__name__)

CORRELATION_BYTES = 8
REQUEST_EXPIRY_S = 1
"""A request the broker could not deliver within this would give a useless sample."""
IDLE_WAKE_NS = NS_PER_S


@dataclass(frozen=True)
class RequestSent:
    """The tag of a request, so that its round trip counts from when it really left."""

    correlation: bytes


class Asker:
    """Makes time requests and turns matching answers into samples."""

    def __init__(
        self,
        clock: SoftwareClock,
        topics: Topics,
        name: str,
        *,
        timeout_s: float,
        protocol: MqttVersion = MqttVersion.V5,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        trusted: TrustedKeys | None = None,
        reply_topic: str | None = None,
    ) -> None:
        self.clock = clock
        self.topics = topics
        self.name = name
        self.trusted = trusted
        self.request_topic = topics.cristian_request
        """Where requests go: the site's time servers, or (a fleet node's) one master."""
        self.ask_round: int | None = None
        """The round a fleet node's requests measure for (see TimeRequest)."""
        self.reply_topic = reply_topic or topics.cristian_reply(name)
        self.timeout_ns = round(timeout_s * NS_PER_S)
        self.protocol = protocol
        self.pending = PendingRequests()
        self._random_bytes = random_bytes

    def request(self) -> Publish:
        """A new request, outstanding from now on."""
        correlation = self._random_bytes(CORRELATION_BYTES)
        in_payload = self.protocol != MqttVersion.V5
        request = TimeRequest(
            client=self.name,
            sent=0,
            reply_to=self.reply_topic if in_payload else None,
            correlation=correlation if in_payload else None,
            round=self.ask_round,
        )
        stamped_mono = echo = 0

        def stamp() -> int:
            nonlocal stamped_mono, echo
            stamped_mono = self.clock.monotonic_ns()
            echo = self.clock.reading_at(stamped_mono)
            return echo

        payload = request.encode_stamped(stamp)
        # Until it is known to have left, the stamp, read earlier, stands in for t1 (an
        # early t1 only widens the measured delay).
        waiting = Outstanding(echo, stamped_mono, stamped_mono + self.timeout_ns)
        self.pending.add(correlation, waiting)
        return Publish(
            self.request_topic,
            payload,
            response_topic=self.reply_topic,
            correlation=correlation,
            expiry_s=REQUEST_EXPIRY_S,
            tag=RequestSent(correlation),
        )

    def sent(self, tag: Hashable, mono: int | None) -> None:
        if isinstance(tag, RequestSent) and mono is not None:
            self.pending.left_at(tag.correlation, mono)

    def expire(self) -> int:
        """Give up on requests past their timeout; return how many."""
        return self.pending.expire(self.clock.monotonic_ns())

    def take(self, message: Inbound) -> Sample | None:
        """The sample an answer gives, or None (the reason logged)."""
        arrived_mono = message.received_mono
        response = receive(message, TimeResponse, self.topics, self.trusted)
        if response is None:
            return None
        correlation = response.correlation or message.correlation
        if correlation is None or (self.trusted is not None and response.correlation is None):
            log.warning("dropped a time response from %s: no correlation", response.server)
            return None
        if message.correlation not in (None, correlation):
            log.warning("dropped a time response from %s: two correlations", response.server)
            return None
        request = self.pending.take(correlation, response.echo, arrived_mono, response.server)
        if request == ANSWERED_BY_ANOTHER:
            log.debug("dropped a time response from %s: %s", response.server, request)
            return None
        if isinstance(request, str):
            log.warning("dropped a time response from %s: %s", response.server, request)
            return None
        t4 = self.clock.reading_at(arrived_mono)
        t1 = t4 - (arrived_mono - request.sent_mono)
        sample = Sample(
            Exchange(t1, response.received, response.sent, t4),
            peer=response.server,
            responder_ppm=response.rate_ppm,
            requester_ppm=HOST_TOLERANCE_PPM,
            adjusted_ns=self.clock.adjusted_ns(arrived_mono),
            arrived_mono=arrived_mono,
            epoch=response.epoch,
        )
        reason = sample.implausible()
        if reason is not None:
            log.warning("dropped a time response from %s: %s", response.server, reason)
            return None
        return sample


class Burst:
    """Cristian's several tries: `wanted` exchanges one after another, each request sent
    once the previous one is answered or has timed out, so no request queues behind
    another; the lowest-delay answer is the one to use."""

    def __init__(self, asker: Asker, wanted: int) -> None:
        self.asker = asker
        self.wanted = wanted
        self.sent = 0
        self.samples: list[Sample] = []

    @property
    def done(self) -> bool:
        return self.sent >= self.wanted and not self.asker.pending

    def step(self) -> list[Publish]:
        """Time out a lost request; the next request when due."""
        self.asker.expire()
        if self.asker.pending or self.sent >= self.wanted:
            return []
        self.sent += 1
        return [self.asker.request()]

    def take(self, message: Inbound) -> list[Publish]:
        sample = self.asker.take(message)
        if sample is not None:
            self.samples.append(sample)
        return self.step()

    def best(self) -> Sample | None:
        """The lowest-delay sample of the servers that agree.  With answers from several
        servers (they share the site's requests), each server's lowest-delay sample gives an
        interval, offset ± bound, and a server whose interval the majority's does not meet is
        a falseticker, left out (Marzullo's intersection, as NTP does); with no majority
        there is no best sample."""
        by_server: dict[str, Sample] = {}
        for sample in self.samples:
            held = by_server.get(sample.peer)
            if held is None or sample.delay_s < held.delay_s:
                by_server[sample.peer] = sample
        if len(by_server) <= 1:
            return lowest_delay(self.samples)
        agreement = marzullo(
            {
                peer: (s.offset_s - s.error_bound_s, s.offset_s + s.error_bound_s)
                for peer, s in by_server.items()
            }
        )
        if agreement is None:
            log.warning("the time servers disagree, with no majority: %s", ", ".join(by_server))
            return None
        if agreement.falsetickers:
            log.warning("left out falsetickers: %s", ", ".join(sorted(agreement.falsetickers)))
        return lowest_delay(by_server[peer] for peer in agreement.truechimers)

    def next_deadline(self) -> int | None:
        """When the outstanding request times out, if one is."""
        return self.asker.pending.next_deadline()


class Inquirer(PassiveRole):
    """A Cristian client that asks when told to and keeps no status (so it has no will):
    the role behind `clocksync ask`, and the tests' and benchmarks' clients."""

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        timeout_s: float = 1.0,
        protocol: MqttVersion = MqttVersion.V5,
        trusted: TrustedKeys | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.asker = Asker(
            clock, Topics(site), name, timeout_s=timeout_s, protocol=protocol, trusted=trusted
        )
        self.burst: Burst | None = None

    def start(self, samples: int) -> list[Action]:
        """Begin a burst of `samples` exchanges (the last one is given up)."""
        self.burst = Burst(self.asker, samples)
        return self.on_timer(self.clock.monotonic_ns())

    def subscriptions(self) -> list[str]:
        return [self.asker.reply_topic]

    def on_connect(self, mono: int) -> list[Action]:
        return [Wake(mono + IDLE_WAKE_NS)]

    def on_message(self, message: Inbound) -> list[Action]:
        if self.burst is None:
            log.warning("dropped a time response on %s: no request is outstanding", message.topic)
            return []
        return [*self.burst.take(message), self._wake(message.received_mono)]

    def on_sent(self, tag: Hashable, mono: int | None) -> None:
        self.asker.sent(tag, mono)

    def on_timer(self, mono: int) -> list[Action]:
        sends: list[Action] = [] if self.burst is None else [*self.burst.step()]
        return [*sends, self._wake(mono)]

    def _wake(self, mono: int) -> Wake:
        deadline = None if self.burst is None else self.burst.next_deadline()
        return Wake(mono + IDLE_WAKE_NS if deadline is None else deadline + 1)
