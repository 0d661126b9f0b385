"""The messages of the protocol (the wire format itself is clocksync.wire).

Messages from the master carry `epoch`, the master's incarnation, so that a later election
can fence off a deposed master; a reply or correction is matched on epoch, round and poll
sequence together.  `subject` names the field that must agree with the participant named in
the topic, so that no participant can speak for another.
"""

from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from clocksync.protocol.timefmt import format_ns
from clocksync.protocol.wire import (
    NAME,
    SEND_TIME_MARKER,
    VERSION,
    AnyRole,
    AnyState,
    AnySync,
    Count,
    Flag,
    MaybeCorrelation,
    MaybeCount,
    MaybeFrequency,
    MaybeName,
    MaybeSeconds,
    MaybeTime,
    MaybeTopic,
    Message,
    MessageError,
    Name,
    Ppm,
    Seconds,
    Share,
    Time,
    WireObject,
    listing,
    optional,
)

# MessageError is re-exported: callers of decode() catch it from here.
__all__ = [
    "Correction",
    "FleetReport",
    "FleetResult",
    "FleetServer",
    "FleetTick",
    "Leader",
    "MessageError",
    "Poll",
    "PreviousSend",
    "Reply",
    "RoundEntry",
    "RoundSummary",
    "Status",
    "TimeRequest",
    "TimeResponse",
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
    sealed: ClassVar[bool] = True


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
    """Node to master: t2 (`received`) and t3 (`sent`) on the node's clock, the precise
    send time of its previous reply in the round (null in a round's first reply), and
    `adjusted_s`, all the correction its clock has taken so far (steps, slews and frequency
    correction), as it answered: the master removes it to learn the clock's natural
    frequency (clocksync.master.ensemble)."""

    kind: ClassVar[str] = "reply"
    sealed: ClassVar[bool] = True
    subject: ClassVar[str] = "node"
    stamped: ClassVar[str] = "sent"
    node: Name
    epoch: Count
    round: Count
    seq: Count
    received: Time
    sent: Time
    previous: Annotated[PreviousSend | None, optional(PreviousSend.codec())] = None
    adjusted_s: MaybeSeconds = None


@dataclass(frozen=True)
class Correction(_ToNode):
    """Master to one node: add `correction_s` to the clock as it was when it answered `seq`;
    `delay_s` is that exchange's round trip, by which the node weighs it in its history.
    How the master steers its own clock: `reference_s` is all the correction it had taken
    at that exchange and `reference_now_s` as the round ended and it sent this (this
    round's move included in both), and `frequency_ppm` its frequency correction from now
    on.  The node follows that steering exactly and filters only its own measurements
    (clocksync.core.tracking)."""

    kind: ClassVar[str] = "correction"
    sealed: ClassVar[bool] = True
    correction_s: Seconds
    delay_s: MaybeSeconds = None
    reference_s: MaybeSeconds = None
    reference_now_s: MaybeSeconds = None
    frequency_ppm: MaybeFrequency = None


@dataclass(frozen=True)
class RoundEntry(WireObject):
    """One clock's line of a round summary.  Offsets are its clock minus the master's."""

    name: Name
    role: AnyRole
    offset_s: Seconds
    delay_s: Seconds
    correction_s: Seconds
    excluded: Flag


@dataclass(frozen=True)
class RoundSummary(Message):
    """What the master did in one round; retained, for monitors and for people."""

    kind: ClassVar[str] = "round"
    sealed: ClassVar[bool] = True
    limit: ClassVar[int] = MAX_SUMMARY_PAYLOAD
    master: Name
    epoch: Count
    round: Count
    started: Time
    average_s: Seconds
    window_s: Seconds
    spread_s: Seconds
    participants: Annotated[tuple[RoundEntry, ...], listing(RoundEntry.codec())]
    missing: Annotated[tuple[str, ...], listing(NAME)] = field(default=())
    missing_count: Count = 0
    fleet_asked: Count = 0
    fleet_reported: Count = 0


@dataclass(frozen=True)
class FleetTick(Message):
    """Leader to the whole fleet, one message: round `round` begins.  Each fleet node asks
    the time once (or `samples` times) at a moment it draws between `settle_s` and
    `window_s` from now, and reports its offset with probability `report_share`, so that
    the leader hears enough clocks for the average however large the fleet.  It asks one of
    `servers`, drawn at random, the standby masters that answer for the leader; the leader
    itself when there are none."""

    kind: ClassVar[str] = "fleet-tick"
    sealed: ClassVar[bool] = True
    master: Name
    epoch: Count
    round: Count
    window_s: Seconds
    report_share: Share
    settle_s: Seconds = 0.0
    servers: Annotated[tuple[str, ...], listing(NAME)] = field(default=())


@dataclass(frozen=True)
class FleetReport(Message):
    """Fleet node to leader: its offset (its clock minus the leader's, at the exchange)
    and that exchange's delay, for the round's average.  A node that asked a standby master
    (see FleetTick) names it as `server`, and its offset is from that master's clock: the
    leader adds the standby's offset from itself, as the round's polls measured it."""

    kind: ClassVar[str] = "fleet-report"
    sealed: ClassVar[bool] = True
    subject: ClassVar[str] = "node"
    node: Name
    epoch: Count
    round: Count
    offset_s: Seconds
    delay_s: Seconds
    server: MaybeName = None


@dataclass(frozen=True)
class FleetServer(WireObject):
    """A standby master that answered fleet asks for the leader in a round, as the leader
    measured it in that round: `offset_s` (its clock minus the leader's) within `bound_s`,
    at `measured` (the leader's clock).  Its clock runs within `rate_ppm` of the line its
    frequency estimate draws, so an answer it gave at another moment of the round measured
    the leader within `rate_ppm` times the time between more."""

    name: Name
    offset_s: Seconds
    bound_s: Seconds
    measured: Time
    rate_ppm: Ppm


@dataclass(frozen=True)
class FleetResult(Message):
    """Leader to the whole fleet, one message: the round's average offset from the
    leader's clock.  A fleet node adds it to the offset it measured to the leader (the
    server's clock minus its own): the same correction the leader would have sent it.

    `applied` and `slewed` are the leader's clock when it began taking its own correction
    for the round in, and when that is done: an answer the leader sent before `applied`
    measured the clock the average refers to; one it received after `slewed`, the clock
    that has taken it in already (a node whose exchange ended after the round closed).
    Absent when the leader stepped, which can run its clock backwards.

    `servers` are the standby masters that answered for the leader in the round (see
    FleetServer): a node answered by one adds its offset from the leader to what it measured.

    How the leader steers its own clock: `reference_now_s` is all the correction it had
    taken at `applied`, the round's move included, and `frequency_ppm` its frequency
    correction from then on (it ran at the previous result's until then).  A node follows
    that steering exactly and filters only its own measurements (clocksync.core.tracking).
    The average is the leader's own correction, the move it makes
    (clocksync.master.rounds.move_for).
    """

    kind: ClassVar[str] = "fleet-result"
    sealed: ClassVar[bool] = True
    master: Name
    epoch: Count
    round: Count
    average_s: Seconds
    applied: MaybeTime = None
    slewed: MaybeTime = None
    servers: Annotated[tuple[FleetServer, ...], listing(FleetServer.codec())] = field(default=())
    reference_now_s: MaybeSeconds = None
    frequency_ppm: MaybeFrequency = None


@dataclass(frozen=True)
class Status(Message):
    """A participant's retained status; `host_offset_s` is the truth signal.

    `host_offset_s` is the participant's clock minus its host's system clock at `host_time`
    (host clock), so anyone on the same host can check accuracy without trusting clocksync.
    A Last Will carries null for the measured fields, since it was written at connect time.
    `error_bound_s` is how far off the clock may be now, where the participant knows it
    (a Cristian node: its last correction's bound, grown since).  `leader` is the master a
    Berkeley participant follows, or is; a master's `priority` makes it a candidate to lead
    (the highest leads, the first name breaking a tie).  `frequency_ppm` is the frequency
    correction in force and `frequency_error_ppm` the standard error of its estimate, once
    the clock tracks its reference (clocksync.core.tracking).
    """

    kind: ClassVar[str] = "status"
    subject: ClassVar[str] = "name"
    name: Name
    role: AnyRole
    state: AnyState
    sync: AnySync
    host_offset_s: MaybeSeconds = None
    host_time: MaybeTime = None
    last_correction_s: MaybeSeconds = None
    slew_remaining_s: MaybeSeconds = None
    updates: Count = 0
    error_bound_s: MaybeSeconds = None
    leader: MaybeName = None
    priority: MaybeCount = None
    frequency_ppm: MaybeFrequency = None
    frequency_error_ppm: MaybeFrequency = None


@dataclass(frozen=True)
class Leader(Message):
    """Who leads the site now, retained: the leader's name and its term (`epoch`), which
    only grows from one leader to the next, so that a deposed leader's polls and
    corrections, carrying an older one, are fenced off."""

    kind: ClassVar[str] = "leader"
    sealed: ClassVar[bool] = True
    leader: Name
    epoch: Count
    since: Time


@dataclass(frozen=True)
class TimeRequest(Message):
    """Client to time server: "what time is it?" (Cristian).

    `sent` is the client's clock as the request is sent; the server echoes it, so an answer
    can be matched to its request.  With MQTT 5 the reply topic and correlation data travel
    as the Response Topic and Correlation Data properties; a client on an MQTT 3.1.1
    connection puts them in `reply_to` and `correlation` instead.  A fleet node's ask names
    the `round` it measures for: a standby master answers only for the round its clock is in.
    """

    kind: ClassVar[str] = "time-request"
    stamped: ClassVar[str] = "sent"
    client: Name
    sent: Time
    reply_to: MaybeTopic = None
    correlation: MaybeCorrelation = None
    round: MaybeCount = None


@dataclass(frozen=True)
class TimeResponse(Message):
    """Time server to client: t2 (`received`) and t3 (`sent`) on the server's clock.

    `echo` is the request's `sent`; `rate_ppm` bounds how far the server's clock rate may be
    from true time while the answer travels (see clocksync.core.bounds); `epoch` is the
    server's incarnation.  `correlation` is set when the request carried it in its payload.
    """

    kind: ClassVar[str] = "time-response"
    sealed: ClassVar[bool] = True
    subject: ClassVar[str] = "client"
    stamped: ClassVar[str] = "sent"
    server: Name
    client: Name
    epoch: Count
    echo: Time
    received: Time
    rate_ppm: Ppm
    sent: Time
    correlation: MaybeCorrelation = None

    def encode_for_send_time(self) -> bytes:
        """The same bytes as the generic encoder writes (a property test checks), by one
        format: a time server writes thousands a second.  No field needs escaping: names
        and times are plain by construction, the correlation is hex."""
        correlation = "null" if self.correlation is None else f'"{self.correlation.hex()}"'
        return (
            f'{{"v": {VERSION}, "type": "{self.kind}", "server": "{self.server}", '
            f'"client": "{self.client}", "epoch": {self.epoch}, '
            f'"echo": "{format_ns(self.echo)}", "received": "{format_ns(self.received)}", '
            f'"rate_ppm": {float(self.rate_ppm)!r}, "sent": "{SEND_TIME_MARKER}", '
            f'"correlation": {correlation}}}'
        ).encode()
