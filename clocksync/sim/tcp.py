"""The broker's side of one client's TCP connection, Nagle's algorithm on: Mosquitto's
default (its `set_tcp_nodelay` is off unless configured).

With Nagle on, a small segment written while an earlier one still awaits its ACK is held
until that ACK comes, and then leaves with whatever else was held.  The client's kernel
ACKs a segment at once in quick-ACK mode; otherwise it delays the ACK, to piggyback it on
the client's next send, for up to the delayed-ACK timeout (40 ms on Linux).  A client that
has just sent something but is now only listening (a master between polls) thus leaves the
broker holding every message for it until its next send: a reply to a poll arrives late,
one way only, and its offset is off by half the wait.  clocksync's transport asks its
kernel for a quick ACK after every read (the ACK then leaves when the process reads);
`quickack` models that.
"""

from collections.abc import Callable

from clocksync.protocol.envelope import Publish

DELAYED_ACK_NS = 40_000_000


class NagleDown:
    """Messages from the broker to one client.

    `transmit(messages, now)` puts messages on the wire together and returns their arrival
    at the client; `schedule(at, action)` runs an action at virtual instant `at`; `now()`
    reads virtual time; `ack_delay()` draws an ACK's way back to the broker.
    """

    def __init__(
        self,
        transmit: Callable[[list[Publish], int], int],
        schedule: Callable[[int, Callable[[], None]], None],
        now: Callable[[], int],
        ack_delay: Callable[[], int],
    ) -> None:
        self._transmit = transmit
        self._schedule = schedule
        self._now = now
        self._ack_delay = ack_delay
        self.awaiting = False
        self.held: list[Publish] = []
        self._arrival = 0
        self._generation = 0

    def write(self, message: Publish) -> None:
        """The broker writes `message` to this client's socket now."""
        if self.awaiting:
            self.held.append(message)
            return
        self._send([message])

    def client_acks(self) -> None:
        """The client's kernel ACKs what has arrived by now (it sent something, or read in
        quick-ACK mode)."""
        now = self._now()
        if self.awaiting and self._arrival <= now:
            generation = self._generation
            self._schedule(now + self._ack_delay(), lambda: self._acked(generation))

    def _send(self, messages: list[Publish]) -> None:
        self._arrival = self._transmit(messages, self._now())
        self.awaiting = True
        self._generation += 1
        generation = self._generation
        timeout = self._arrival + DELAYED_ACK_NS + self._ack_delay()
        self._schedule(timeout, lambda: self._acked(generation))

    def _acked(self, generation: int) -> None:
        if generation != self._generation or not self.awaiting:
            return
        self.awaiting = False
        if self.held:
            held, self.held = self.held, []
            self._send(held)
