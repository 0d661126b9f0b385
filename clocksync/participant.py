"""What every role shares: a clock, a retained status, a broker link, and one loop.

A role (Berkeley master, Berkeley node, and later ones) subclasses Participant, says what to
subscribe to, handles messages and does its timed work in `tick`.  Everything runs on one
thread: the loop waits on the broker socket until the next deadline, so a fleet of any size
costs no thread per node.
"""

import logging
import signal
from abc import ABC, abstractmethod
from dataclasses import replace
from types import FrameType
from typing import TypeVar

from clocksync.clock import NS_PER_S, Applied, SoftwareClock
from clocksync.messages import Status
from clocksync.topics import Topics, check_name
from clocksync.transport import BrokerUrl, Inbound, MqttLink, Outbound
from clocksync.wire import Message, MessageError, Role, State

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)

MAX_WAIT_S = 0.1


def receive(message: Inbound, kind: type[M], topics: Topics) -> M | None:
    """`message` decoded as a `kind`, or None, the reason logged: a bad payload, or one
    that speaks for another participant than its topic names."""
    try:
        decoded = kind.decode(message.payload)
    except MessageError as error:
        log.warning("dropped a bad %s on %s: %s", kind.kind, message.topic, error)
        return None
    subject = None if kind.subject is None else getattr(decoded, kind.subject)
    if subject is not None and subject != topics.name_in(message.topic):
        log.warning("dropped a %s for %r on %s", kind.kind, subject, message.topic)
        return None
    return decoded


class StopFlag:
    """Set by SIGINT or SIGTERM; the loop checks it at least every MAX_WAIT_S."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> "StopFlag":
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)
        return self

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


class Participant(ABC):
    """A clock with a status topic and a broker connection; subclasses add the protocol.

    `busy_poll_s`: after handling a message, keep polling the socket instead of sleeping for
    this long.  A process woken from sleep by a packet takes tens to hundreds of
    microseconds to run (more in a virtual machine), and for a time server that wait is in
    every client's round trip; the next request of a client's burst usually comes within
    the window.  It costs up to that much CPU after the last message.
    """

    role: Role
    sync: str

    def __init__(
        self,
        *,
        name: str,
        site: str,
        broker: BrokerUrl,
        clock: SoftwareClock,
        status_interval_s: float,
        protocol: str = "5",
        busy_poll_s: float = 0.0,
    ) -> None:
        self.name = check_name(name)
        self._busy_poll_ns = round(busy_poll_s * NS_PER_S)
        self.topics = Topics(site)
        self.clock = clock
        self._status_interval_ns = round(status_interval_s * NS_PER_S)
        self._status_due = 0
        self._last_correction_s: float | None = None
        self._last_error_bound_s: float | None = None
        self.link = MqttLink(
            broker,
            client_id=f"clocksync-{site}-{name}",
            subscriptions=self.subscriptions(),
            on_message=self.handle,
            on_connected=self.connected,
            will=self._status_message("offline", measured=False),
            protocol=protocol,
            send_time=clock.reading_at,
        )

    @abstractmethod
    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to on every (re)connect."""

    @abstractmethod
    def handle(self, message: Inbound) -> None:
        """Handle one message; bad input is logged and dropped, never raised."""

    @abstractmethod
    def tick(self, mono: int) -> int:
        """Do the work due at monotonic instant `mono`; return when next to be called."""

    def run(self, stop: StopFlag) -> int:
        """Serve until `stop` is requested, then say offline and disconnect."""
        log.info("%s %s starting against %s", self.role, self.name, self.link.broker)
        while not stop.requested:
            if not self.link.ready:
                self.link.run_once(MAX_WAIT_S)
                continue
            mono = self.clock.monotonic_ns()
            if mono >= self._status_due:
                self.publish_status()
            deadline = min(self.tick(mono), self._status_due)
            if mono - self.link.last_delivery_mono < self._busy_poll_ns:
                deadline = mono  # see busy_poll_s in __init__'s docstring
            wait_s = (deadline - self.clock.monotonic_ns()) / NS_PER_S
            self.link.run_once(min(max(wait_s, 0.0), MAX_WAIT_S))
        self.link.close([self._status_message("offline", measured=True)])
        log.info("%s %s stopped", self.role, self.name)
        return 0

    def receive(self, message: Inbound, kind: type[M]) -> M | None:
        return receive(message, kind, self.topics)

    def apply_correction(
        self, correction_s: float, adjusted_then: int, error_bound_s: float | None = None
    ) -> None:
        """Apply a correction measured when the clock's total adjustment was `adjusted_then`
        (see SoftwareClock.correct_measured) and report it in the status; `error_bound_s`,
        where known, is how far off the correction may be."""
        how, remaining = self.clock.correct_measured(round(correction_s * NS_PER_S), adjusted_then)
        self._last_correction_s = correction_s
        self._last_error_bound_s = error_bound_s
        level = logging.WARNING if how is Applied.STEP else logging.DEBUG
        log.log(level, "%s %+.6f s (%s)", how.value, remaining / NS_PER_S, self.name)
        self._status_due = min(self._status_due, self.clock.slew_end_mono() or 0)

    def publish_status(self) -> None:
        message = self._status_message("online", measured=True)
        self.link.publish(message.topic, message.payload, retain=True, qos=message.qos)
        self._status_due = self.clock.monotonic_ns() + self._status_interval_ns

    def connected(self) -> None:
        """Called on every (re)connect: say at once that this participant is online."""
        self._status_due = 0

    def _status_message(self, state: State, *, measured: bool) -> Outbound:
        status = Status(
            name=self.name, role=self.role, state=state, sync=self.sync, updates=self.clock.updates
        )
        if measured:
            offset_ns, host_ns = self.clock.host_offset_ns()
            status = replace(
                status,
                host_offset_s=offset_ns / NS_PER_S,
                host_time=host_ns,
                last_correction_s=self._last_correction_s,
                slew_remaining_s=self.clock.slew_remaining_ns() / NS_PER_S,
                error_bound_s=self._last_error_bound_s,
            )
        return Outbound(self.topics.status(self.name), status.encode())
