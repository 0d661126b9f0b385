"""The messages of the protocol (the wire format itself is clocksync.wire).

Messages from the master carry `epoch`, the master's incarnation, so that a later election
can fence off a deposed master; a reply or correction is matched on epoch, round and poll
sequence together.  `subject` names the field that must agree with the participant named in
the topic, so that no participant can speak for another.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from clocksync.wire import (
    NAME,
    Count,
    Flag,
    MaybeSeconds,
    MaybeTime,
    Message,
    MessageError,
    Name,
    Role,
    Seconds,
    State,
    Text,
    Time,
    WireObject,
    dump_stamped,
    listing,
    optional,
)

# MessageError is re-exported: callers of decode() catch it from here.
__all__ = [
    "Correction",
    "MessageError",
    "Participant",
    "Poll",
    "PreviousSend",
    "Reply",
    "RoundSummary",
    "Status",
]

MAX_SUMMARY_PAYLOAD = 4 * 1024 * 1024


@dataclass(frozen=True)
class _ToNode(Message):
    """What the master says to one node about one poll of a round."""

    subject: ClassVar[str] = "node"
    master: Name
    node: Name
    epoch: Count
    round: Count
    seq: Count


@dataclass(frozen=True)
class Poll(_ToNode):
    """Master to one node: "send me your clock".

    It carries no send time: the master keeps t1 itself, read just before the send system
    call, after the payload is made.
    """

    kind: ClassVar[str] = "poll"


@dataclass(frozen=True)
class PreviousSend(WireObject):
    """When this node's reply to poll `seq` of the same round really left (interleaved mode).

    A reply's `sent` is read before the reply is encoded and handed to the socket, and on a
    busy host the process can be preempted in between.  The moment just before the send
    system call is only known afterwards, so it rides on the next reply, as in NTP's
    interleaved mode.
    """

    seq: Count
    sent: Time


@dataclass(frozen=True)
class Reply(Message):
    """Node to master: t2 (`received`) and t3 (`sent`) on the node's clock, and the precise
    send time of its previous reply in the round (null in a round's first reply)."""

    kind: ClassVar[str] = "reply"
    subject: ClassVar[str] = "node"
    node: Name
    epoch: Count
    round: Count
    seq: Count
    received: Time
    sent: Time
    previous: Annotated[PreviousSend | None, optional(PreviousSend.codec())] = None

    def encode(self) -> bytes:
        return self.encode_stamped(lambda: self.sent)

    def encode_stamped(self, stamp: Callable[[], int]) -> bytes:
        """This reply with `sent` replaced by `stamp()`, read as late as possible."""
        body = self.to_wire()
        del body["sent"]
        return dump_stamped(self.kind, body, "sent", stamp)


@dataclass(frozen=True)
class Correction(_ToNode):
    """Master to one node: add `correction_s` to the clock as it was when it answered `seq`."""

    kind: ClassVar[str] = "correction"
    correction_s: Seconds


@dataclass(frozen=True)
class Participant(WireObject):
    """One line of a round summary.  Offsets are the participant's clock minus the master's."""

    name: Name
    role: Role
    offset_s: Seconds
    delay_s: Seconds
    correction_s: Seconds
    excluded: Flag


@dataclass(frozen=True)
class RoundSummary(Message):
    """What the master did in one round; retained, for monitors and for people."""

    kind: ClassVar[str] = "round"
    limit: ClassVar[int] = MAX_SUMMARY_PAYLOAD
    master: Name
    epoch: Count
    round: Count
    started: Time
    average_s: Seconds
    window_s: Seconds
    spread_s: Seconds
    participants: Annotated[tuple[Participant, ...], listing(Participant.codec())]
    missing: Annotated[tuple[str, ...], listing(NAME)] = field(default=())


@dataclass(frozen=True)
class Status(Message):
    """A participant's retained status; `host_offset_s` is the truth signal.

    `host_offset_s` is the participant's clock minus its host's system clock at `host_time`
    (host clock), so anyone on the same host can check accuracy without trusting clocksync.
    A Last Will carries null for the measured fields, since it was written at connect time.
    """

    kind: ClassVar[str] = "status"
    subject: ClassVar[str] = "name"
    name: Name
    role: Role
    state: State
    sync: Text
    host_offset_s: MaybeSeconds = None
    host_time: MaybeTime = None
    last_correction_s: MaybeSeconds = None
    slew_remaining_s: MaybeSeconds = None
    updates: Count = 0
