"""The Cristian client's side of an exchange, over any link: `clocksync ask` and the
Cristian node share it.

A request goes to the site's request topic with the client's own reply topic and fresh,
unguessable correlation data: as MQTT 5 properties, or in the payload on a 3.1.1
connection.  An answer is taken only if it matches an outstanding request (see
clocksync.cristian.PendingRequests).  t1 and t4 are kept on the host's monotonic clock and
turned into client-clock readings anchored at t4, so the client's own slews do not enter the
measurement.
"""

import itertools
import logging
import os
import secrets
import time
from dataclasses import dataclass

from clocksync.clock import HOST_TOLERANCE_PPM, NS_PER_S, SoftwareClock
from clocksync.cristian import Outstanding, PendingRequests, TimeSample
from clocksync.measurement import Exchange
from clocksync.messages import TimeRequest, TimeResponse
from clocksync.participant import receive
from clocksync.topics import Topics
from clocksync.transport import BrokerUrl, Inbound, MqttLink

log = logging.getLogger(__name__)

CORRELATION_BYTES = 8
REQUEST_EXPIRY_S = 1
"""A request the broker could not deliver within this would give a useless sample."""
PUMP_S = 0.01
_instances = itertools.count()


@dataclass(frozen=True)
class Answer:
    """A usable sample, the server that gave it, and the clock's total adjustment when its
    answer arrived (what a correction computed from it is relative to)."""

    sample: TimeSample
    server: str
    adjusted_then: int


class Asker:
    """Asks the site's time server and turns matching answers into samples."""

    def __init__(
        self, link: MqttLink, clock: SoftwareClock, topics: Topics, name: str, timeout_s: float
    ) -> None:
        self.link = link
        self.clock = clock
        self.topics = topics
        self.name = name
        self.timeout_ns = round(timeout_s * NS_PER_S)
        self.pending = PendingRequests()

    @property
    def reply_topic(self) -> str:
        return self.topics.cristian_reply(self.name)

    def send(self) -> bool:
        """Send one request now; False when not connected."""
        if not self.link.ready:
            return False
        correlation = secrets.token_bytes(CORRELATION_BYTES)
        in_payload = self.link.protocol != "5"
        request = TimeRequest(
            client=self.name,
            sent=0,
            reply_to=self.reply_topic if in_payload else None,
            correlation=correlation if in_payload else None,
        )
        stamped_mono = echo = 0

        def stamp() -> int:
            nonlocal stamped_mono, echo
            stamped_mono = self.clock.monotonic_ns()
            echo = self.clock.reading_at(stamped_mono)
            return echo

        payload = request.encode_stamped(stamp)
        sent_mono = self.link.publish(
            self.topics.cristian_request,
            payload,
            response_topic=self.reply_topic,
            correlation=correlation,
            expiry_s=REQUEST_EXPIRY_S,
        )
        # Not written at once: the stamp, read earlier, stands in (an early t1 only widens
        # the measured delay).
        sent_mono = sent_mono or stamped_mono
        self.pending.add(correlation, Outstanding(echo, sent_mono, sent_mono + self.timeout_ns))
        return True

    def expire(self) -> int:
        """Give up on requests past their timeout; return how many."""
        return self.pending.expire(self.clock.monotonic_ns())

    def handle(self, message: Inbound) -> Answer | None:
        """The sample an answer gives, or None (the reason logged)."""
        arrived_mono = message.received_mono
        response = receive(message, TimeResponse, self.topics)
        if response is None:
            return None
        correlation = message.correlation or response.correlation
        if correlation is None:
            log.warning("dropped a time response from %s: no correlation", response.server)
            return None
        request = self.pending.take(correlation, response.echo, arrived_mono)
        if isinstance(request, str):
            log.warning("dropped a time response from %s: %s", response.server, request)
            return None
        t4 = self.clock.reading_at(arrived_mono)
        t1 = t4 - (arrived_mono - request.sent_mono)
        sample = TimeSample(
            Exchange(t1, response.received, response.sent, t4),
            server_rate_ppm=response.rate_ppm,
            client_rate_ppm=HOST_TOLERANCE_PPM,
        )
        reason = sample.implausible()
        if reason is not None:
            log.warning("dropped a time response from %s: %s", response.server, reason)
            return None
        return Answer(sample, response.server, self.clock.adjusted_ns(arrived_mono))


class Burst:
    """Cristian's several tries: `wanted` exchanges one after another, each request sent
    once the previous one is answered or has timed out, so no request queues behind
    another; the lowest-delay answer is the one to use."""

    def __init__(self, asker: Asker, wanted: int) -> None:
        self.asker = asker
        self.wanted = wanted
        self.sent = 0
        self.answers: list[Answer] = []

    @property
    def done(self) -> bool:
        return self.sent >= self.wanted and not self.asker.pending

    def step(self) -> None:
        """Time out a lost request and send the next one when due."""
        self.asker.expire()
        if not self.asker.pending and self.sent < self.wanted and self.asker.send():
            self.sent += 1

    def take(self, message: Inbound) -> None:
        answer = self.asker.handle(message)
        if answer is not None:
            self.answers.append(answer)
        self.step()

    def best(self) -> Answer | None:
        return min(self.answers, key=lambda answer: answer.sample.delay_s, default=None)


class CristianClient:
    """A Cristian client on a connection of its own (`clocksync ask`, tests, benchmarks):
    answers go to the burst under way."""

    def __init__(
        self,
        broker: BrokerUrl,
        site: str,
        name: str,
        clock: SoftwareClock,
        *,
        timeout_s: float = 1.0,
        protocol: str = "5",
    ) -> None:
        self.clock = clock
        topics = Topics(site)
        self.burst: Burst | None = None
        self.link = MqttLink(
            broker,
            client_id=f"clocksync-{site}-{name}-{os.getpid()}-{next(_instances)}",
            subscriptions=[topics.cristian_reply(name)],
            on_message=self._take,
            on_connected=lambda: None,
            protocol=protocol,
        )
        self.asker = Asker(self.link, clock, topics, name, timeout_s)

    def _take(self, message: Inbound) -> None:
        if self.burst is not None:
            self.burst.take(message)

    def start(self, samples: int) -> Burst:
        self.burst = Burst(self.asker, samples)
        return self.burst

    def pump(self, timeout_s: float = 0.0) -> None:
        if self.burst is not None:
            self.burst.step()
        self.link.run_once(timeout_s)

    def close(self) -> None:
        self.link.close([])


def run_bursts(clients: list[CristianClient], samples: int, timeout_s: float) -> None:
    """A burst on every client at once, until all are done or `timeout_s` passes; clients
    must be connected."""
    bursts = [client.start(samples) for client in clients]
    deadline = time.monotonic() + timeout_s
    wait_s = PUMP_S if len(clients) == 1 else 0.0
    while not all(burst.done for burst in bursts) and time.monotonic() < deadline:
        for client in clients:
            client.pump(wait_s)
