"""The driver: runs one role over one MQTT link, on the caller's thread.

It waits on the broker socket until the role's next wake-up, hands every message to the role
with its arrival instant, publishes what the role returns, and reports tagged messages'
send instants back; it owns all the I/O, the role none.  Everything runs on one thread, so
a fleet of any size costs no thread per node and nothing needs a lock.
"""

import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from clocksync.core.clock import NS_PER_S
from clocksync.driver.chrony import ChronyFeed
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Action
from clocksync.protocol.signing import Signer, finish_at_send
from clocksync.protocol.wire import SEND_TIME_MARKER
from clocksync.roles.participant import Participant
from clocksync.roles.role import Role, carry_out
from clocksync.transport.link import NUDGE_S, Connected, MqttLink
from clocksync.transport.url import BrokerUrl, TlsFiles

log = logging.getLogger(__name__)

MAX_WAIT_S = 0.1


class StopFlag:
    """Set by SIGINT or SIGTERM; the driver checks it at least every MAX_WAIT_S."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> "StopFlag":
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)
        return self

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def client_id(site: str, name: str) -> str:
    """A participant's MQTT client id: a second process with the same name takes over."""
    return f"clocksync-{site}-{name}"


class SendFinisher:
    """Writes `role`'s clock, and then its seal if it has a key, into a payload at the send
    instant (one-step, see clocksync.transport.link).

    Sealing takes tens of microseconds, and a send time read before it would lead the real
    send by that much, biasing every client's offset by half of it.  So with a key the time
    written is that of `lead_ns` later (the time sealing usually takes here), and the send
    is held until then: the time stays at or before the real send, as the error bound
    needs, and close to it.
    """

    CALIBRATION_SEALS = 20

    def __init__(self, role: Role) -> None:
        self.role = role
        self.lead_ns = 0 if role.signer is None else self._sealing_time_ns(role.signer)

    def __call__(self, payload: bytes, mono: int) -> bytes:
        due = mono + self.lead_ns
        finished = finish_at_send(payload, self.role.clock.reading_at(due), self.role.signer)
        while time.monotonic_ns() < due:
            pass
        return finished

    @classmethod
    def _sealing_time_ns(cls, signer: Signer) -> int:
        """The time sealing an answer takes here: the ninth decile of a few tries."""
        answer = b'{"v": 1, "type": "time-response", "sent": "%s"}' % SEND_TIME_MARKER.encode()
        took = []
        for _ in range(cls.CALIBRATION_SEALS):
            started = time.monotonic_ns()
            signer.finish(signer.seal_later(answer))
            took.append(time.monotonic_ns() - started)
        return sorted(took)[len(took) * 9 // 10]


def link_for(
    role: Role,
    broker: BrokerUrl,
    client_id: str,
    protocol: MqttVersion = MqttVersion.V5,
    tls: TlsFiles | None = None,
    *,
    password: str | None = None,
    nudge_s: float = NUDGE_S,
) -> MqttLink:
    """A link carrying `role`'s subscriptions and will, which writes `role`'s clock (and
    seal) into outgoing payloads that hold the send-time marker; `nudge_s`, see MqttLink."""
    return MqttLink(
        broker,
        client_id,
        subscriptions=role.subscriptions(),
        will=role.will(),
        protocol=protocol,
        finish=SendFinisher(role),
        tls=tls,
        password=password,
        nudge_s=nudge_s,
    )


def participant_driver(
    participant: Participant,
    broker: BrokerUrl,
    protocol: MqttVersion = MqttVersion.V5,
    tls: TlsFiles | None = None,
    *,
    password: str | None = None,
    chrony_sock: Path | None = None,
    busy_poll_s: float = 0.0,
    nudge_s: float = NUDGE_S,
) -> "Driver":
    """A participant's driver over its own link (its usual client id), feeding chronyd at
    `chrony_sock` once it is synchronized, if given."""
    site, name = participant.topics.site, participant.name
    link = link_for(
        participant, broker, client_id(site, name), protocol, tls,
        password=password, nudge_s=nudge_s,
    )  # fmt: skip
    chrony = (
        None
        if chrony_sock is None
        else ChronyFeed(chrony_sock, participant.clock, lambda: participant.synchronized)
    )
    return Driver(participant, link, busy_poll_s=busy_poll_s, chrony=chrony)


class Driver:
    """Runs `role` over `link`.

    `busy_poll_s`: after a message, keep polling the socket instead of sleeping for this
    long.  A process woken from sleep by a packet takes tens to hundreds of microseconds to
    run (more in a virtual machine), and for a time server that wait is in every client's
    round trip; the next request of a client's burst usually comes within the window.  It
    costs up to that much CPU after the last message.
    """

    def __init__(
        self,
        role: Role,
        link: MqttLink,
        *,
        busy_poll_s: float = 0.0,
        chrony: ChronyFeed | None = None,
    ) -> None:
        """`chrony`: a feed of the role's time to chronyd, sent from this loop."""
        self.role = role
        self.link = link
        self.chrony = chrony
        self._busy_poll_ns = round(busy_poll_s * NS_PER_S)
        self._wake_at = 0

    @property
    def wake_at(self) -> int:
        """When the role wants its timer next (monotonic ns)."""
        return self._wake_at

    def run(self, stop: StopFlag) -> int:
        """Serve until `stop` is requested, then say goodbye and disconnect."""
        log.info("%s starting against %s", self.role.name, self.link.broker)
        while not stop.requested:
            self.step(MAX_WAIT_S)
        self.close()
        log.info("%s stopped", self.role.name)
        return 0

    def step(self, max_wait_s: float) -> None:
        """Run what is due, then wait up to `max_wait_s` for traffic and handle it."""
        wait_s = max_wait_s
        if self.link.ready:
            now = time.monotonic_ns()
            if now >= self._wake_at:
                self.perform(self.role.on_timer(now))
            if self.chrony is not None:
                self.chrony.maybe_send(now)
            if now - self.link.last_delivery_mono < self._busy_poll_ns:
                wait_s = 0.0  # see busy_poll_s in the class docstring
            else:
                wait_s = min(max((self._wake_at - time.monotonic_ns()) / NS_PER_S, 0.0), max_wait_s)
        events = self.link.poll(wait_s)
        together = len(events) > 1 and self.role.signer is None
        if together:
            # Answers to a batch of requests leave together, see MqttLink.hold.  Not when
            # sealing: each seal takes tens of µs, which would hold the first answers back.
            self.link.hold()
        for event in events:
            if isinstance(event, Connected):
                self.perform(self.role.on_connect(time.monotonic_ns()))
            else:
                self.perform(self.role.on_message(event))
        if together:
            self.link.release()

    def perform(self, actions: Sequence[Action]) -> None:
        """Carry out the role's actions: publish, report send instants, keep the wake-up."""
        wake = carry_out(self.role, actions, self.link.publish)
        if wake is not None:
            self._wake_at = wake

    def close(self) -> None:
        self.link.close(self.role.goodbye())
        if self.chrony is not None:
            self.chrony.close()
