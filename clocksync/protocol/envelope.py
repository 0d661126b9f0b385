"""What a role exchanges with the network, as plain values: the sans-IO boundary.

A role is given an `Inbound` message (with the instant it arrived), told when a message it
asked to publish really left (its `tag` and the send instant), and woken at the instant it
asked for.  It answers with actions: `Publish` a message, or `Wake` it at a given instant.
Whatever carries the messages (the MQTT driver, the simulator) does the rest.  Instants
are host monotonic nanoseconds.
"""

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Inbound:
    """A received message.  `received_mono` is when it arrived: the kernel's receive
    timestamp where the transport has one (`kernel_stamped`), else when the MQTT library
    read it.  The MQTT 5 request/response properties are None when absent (always, on a
    3.1.1 connection)."""

    topic: str
    payload: bytes
    received_mono: int
    response_topic: str | None = None
    correlation: bytes | None = None
    kernel_stamped: bool = False


@dataclass(frozen=True)
class Publish:
    """A message to send.

    `tag`, when set, asks to be told when the message was handed to the network (the role's
    `on_sent`), or that it was not sent at once.  A payload holding the wire format's
    SEND_TIME_MARKER has the sender's clock written in place of it at that instant
    (one-step, as PTP hardware does).  The MQTT 5 properties are dropped on a 3.1.1
    connection: roles that need them put them in the payload too.

    `nudge`: wake the broker just before sending it (see MqttLink's `nudge_s`).  Set on
    both timed messages of a Berkeley exchange, the poll and the reply, so that both hops
    find the broker alike.  Not on a Cristian request: its answer leaves the server at
    once and unnudged (a spin per answer would cost a time server most of its CPU), so a
    nudged request would make only the first hop quick, and the offset one-sided.
    """

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0
    response_topic: str | None = None
    correlation: bytes | None = None
    expiry_s: int | None = None
    tag: Hashable | None = None
    nudge: bool = False


@dataclass(frozen=True)
class Wake:
    """Call the role's `on_timer` at monotonic instant `at` (replacing any earlier Wake)."""

    at: int


Action = Publish | Wake
