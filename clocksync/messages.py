"""Message formats: JSON objects with RFC 3339 times, checked field by field on the way in.

Every message carries `v` (the protocol version, 1) and `type`.  Messages from the master
carry `epoch`, the master's incarnation, so that a later election can fence off a deposed
master; a reply or correction is matched on epoch, round and poll sequence together.
Decoders ignore fields they do not know, so a later version can add fields (a signature,
for one) without breaking older nodes.  Anything else that is off (not JSON, NaN, a wrong
type, a bad name, too large) raises MessageError, which callers log and drop.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeVar

from clocksync.timefmt import format_ns, parse_ns
from clocksync.topics import valid_name

VERSION = 1
MAX_PAYLOAD = 4096
MAX_SUMMARY_PAYLOAD = 4 * 1024 * 1024
MAX_MAGNITUDE_S = 1e9

Role = Literal["master", "node"]
State = Literal["online", "offline"]
_T = TypeVar("_T", bound=str)


class MessageError(ValueError):
    """A payload that is not a valid clocksync message."""


def _reject_constant(name: str) -> float:
    raise MessageError(f"{name} is not a number")


def _load(payload: bytes, kind: str, limit: int = MAX_PAYLOAD) -> "_Fields":
    if len(payload) > limit:
        raise MessageError(f"{len(payload)} bytes is more than {limit} for a {kind}")
    try:
        data = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, or an int too long
        raise MessageError(f"not JSON: {error}") from None
    fields = _Fields(data, kind)
    if fields.integer("v") != VERSION:
        raise MessageError(f"unsupported protocol version in a {kind}")
    if fields.text("type") != kind:
        raise MessageError(f"expected a {kind}")
    return fields


def _dump(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, "type": kind, **body}, allow_nan=False).encode()


def _dump_stamped(kind: str, body: dict[str, Any], key: str, stamp: Callable[[], int]) -> bytes:
    """Encode `body`, then read `stamp()` and append it as time field `key`.

    The send timestamp of an exchange should be read as late as possible: here only the
    formatting of that one field lies between the reading and the finished payload.
    """
    head = _dump(kind, body)[:-1]
    return head + f', "{key}": "{format_ns(stamp())}"}}'.encode()


class _Fields:
    """Typed access to a decoded JSON object; each getter raises MessageError when off."""

    def __init__(self, data: object, kind: str) -> None:
        if not isinstance(data, dict):
            raise MessageError(f"a {kind} must be a JSON object")
        self._data: dict[str, object] = data
        self._kind = kind

    def _get(self, key: str) -> object:
        if key not in self._data:
            raise MessageError(f"{self._kind} lacks {key!r}")
        return self._data[key]

    def integer(self, key: str) -> int:
        value = self._get(key)
        if type(value) is not int or not 0 <= value < 2**63:
            raise MessageError(f"{self._kind}.{key} must be a non-negative integer")
        return value

    def number(self, key: str) -> float:
        value = self._get(key)
        if type(value) is not int and not (type(value) is float and math.isfinite(value)):
            raise MessageError(f"{self._kind}.{key} must be a finite number")
        if abs(value) > MAX_MAGNITUDE_S:  # compared before float(): an int may not fit one
            raise MessageError(f"{self._kind}.{key} is out of range")
        return float(value)

    def optional(self, key: str) -> object:
        """The raw value, None when absent or null; for the caller to check."""
        return self._data.get(key)

    def optional_float(self, key: str) -> float | None:
        return None if self._data.get(key) is None else self.number(key)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise MessageError(f"{self._kind}.{key} must be true or false")
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or len(value) > 64:
            raise MessageError(f"{self._kind}.{key} must be a short string")
        return value

    def choice(self, key: str, options: tuple[_T, ...]) -> _T:
        value = self.text(key)
        for option in options:
            if value == option:
                return option
        raise MessageError(f"{self._kind}.{key} must be one of {', '.join(options)}")

    def name(self, key: str) -> str:
        value = self.text(key)
        if not valid_name(value):
            raise MessageError(f"{self._kind}.{key} is not a valid name")
        return value

    def time(self, key: str) -> int:
        try:
            return parse_ns(self.text(key))
        except ValueError as error:
            raise MessageError(f"{self._kind}.{key}: {error}") from None

    def optional_time(self, key: str) -> int | None:
        return None if self._data.get(key) is None else self.time(key)

    def items(self, key: str) -> list[object]:
        value = self._get(key)
        if not isinstance(value, list):
            raise MessageError(f"{self._kind}.{key} must be a list")
        return value


@dataclass(frozen=True)
class Poll:
    """Master to one node: "send me your clock".

    It carries no send time: the master keeps t1 itself, read just before the send system
    call, after the payload is made.
    """

    master: str
    node: str
    epoch: int
    round: int
    seq: int

    def encode(self) -> bytes:
        return _dump(
            "poll",
            {
                "master": self.master,
                "node": self.node,
                "epoch": self.epoch,
                "round": self.round,
                "seq": self.seq,
            },
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        f = _load(payload, "poll")
        return cls(
            f.name("master"),
            f.name("node"),
            f.integer("epoch"),
            f.integer("round"),
            f.integer("seq"),
        )


@dataclass(frozen=True)
class PreviousSend:
    """When this node's reply to poll `seq` of the same round really left (interleaved mode).

    A reply's `sent` is read before the reply is encoded and handed to the socket, and on a
    busy host the process can be preempted in between.  The moment just before the send
    system call is only known afterwards, so it rides on the next reply, as in NTP's
    interleaved mode.
    """

    seq: int
    sent: int

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "sent": format_ns(self.sent)}

    @classmethod
    def from_object(cls, data: object) -> Self:
        f = _Fields(data, "previous")
        return cls(f.integer("seq"), f.time("sent"))


@dataclass(frozen=True)
class Reply:
    """Node to master: t2 (`received`) and t3 (`sent`) on the node's clock, and possibly the
    precise send time of its previous reply in the round."""

    node: str
    epoch: int
    round: int
    seq: int
    received: int
    sent: int
    previous: PreviousSend | None = None

    def encode(self) -> bytes:
        return self.encode_stamped(
            node=self.node,
            epoch=self.epoch,
            round=self.round,
            seq=self.seq,
            received=self.received,
            previous=self.previous,
            stamp=lambda: self.sent,
        )

    @classmethod
    def encode_stamped(
        cls,
        *,
        node: str,
        epoch: int,
        round: int,
        seq: int,
        received: int,
        previous: PreviousSend | None,
        stamp: Callable[[], int],
    ) -> bytes:
        """The payload of a reply whose `sent` time is read by `stamp` as late as possible."""
        body: dict[str, Any] = {
            "node": node,
            "epoch": epoch,
            "round": round,
            "seq": seq,
            "received": format_ns(received),
        }
        if previous is not None:
            body["previous"] = previous.as_dict()
        return _dump_stamped("reply", body, "sent", stamp)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        f = _load(payload, "reply")
        previous = f.optional("previous")
        return cls(
            f.name("node"),
            f.integer("epoch"),
            f.integer("round"),
            f.integer("seq"),
            f.time("received"),
            f.time("sent"),
            None if previous is None else PreviousSend.from_object(previous),
        )


@dataclass(frozen=True)
class Correction:
    """Master to one node: add `correction_s` to the clock as it was when it answered `seq`."""

    master: str
    node: str
    epoch: int
    round: int
    seq: int
    correction_s: float

    def encode(self) -> bytes:
        return _dump(
            "correction",
            {
                "master": self.master,
                "node": self.node,
                "epoch": self.epoch,
                "round": self.round,
                "seq": self.seq,
                "correction_s": self.correction_s,
            },
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        f = _load(payload, "correction")
        return cls(
            f.name("master"),
            f.name("node"),
            f.integer("epoch"),
            f.integer("round"),
            f.integer("seq"),
            f.number("correction_s"),
        )


@dataclass(frozen=True)
class Participant:
    """One line of a round summary.  Offsets are the participant's clock minus the master's."""

    name: str
    role: Role
    offset_s: float
    delay_s: float
    correction_s: float
    excluded: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "offset_s": self.offset_s,
            "delay_s": self.delay_s,
            "correction_s": self.correction_s,
            "excluded": self.excluded,
        }

    @classmethod
    def from_object(cls, data: object) -> Self:
        f = _Fields(data, "participant")
        return cls(
            f.name("name"),
            f.choice("role", ("master", "node")),
            f.number("offset_s"),
            f.number("delay_s"),
            f.number("correction_s"),
            f.flag("excluded"),
        )


@dataclass(frozen=True)
class RoundSummary:
    """What the master did in one round; retained, for monitors and for people."""

    master: str
    epoch: int
    round: int
    started: int
    average_s: float
    window_s: float
    spread_s: float
    participants: tuple[Participant, ...]
    missing: tuple[str, ...] = field(default=())

    def encode(self) -> bytes:
        return _dump(
            "round",
            {
                "master": self.master,
                "epoch": self.epoch,
                "round": self.round,
                "started": format_ns(self.started),
                "average_s": self.average_s,
                "window_s": self.window_s,
                "spread_s": self.spread_s,
                "participants": [p.as_dict() for p in self.participants],
                "missing": list(self.missing),
            },
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        f = _load(payload, "round", MAX_SUMMARY_PAYLOAD)
        participants = tuple(Participant.from_object(p) for p in f.items("participants"))
        missing = tuple(_Fields({"name": m}, "missing").name("name") for m in f.items("missing"))
        return cls(
            f.name("master"),
            f.integer("epoch"),
            f.integer("round"),
            f.time("started"),
            f.number("average_s"),
            f.number("window_s"),
            f.number("spread_s"),
            participants,
            missing,
        )


@dataclass(frozen=True)
class Status:
    """A participant's retained status; `host_offset_s` is the truth signal.

    `host_offset_s` is the participant's clock minus its host's system clock at `host_time`
    (host clock), so anyone on the same host can check accuracy without trusting clocksync.
    A Last Will carries null for the measured fields, since it was written at connect time.
    """

    name: str
    role: Role
    state: State
    sync: str
    host_offset_s: float | None = None
    host_time: int | None = None
    last_correction_s: float | None = None
    slew_remaining_s: float | None = None
    updates: int = 0

    def encode(self) -> bytes:
        return _dump(
            "status",
            {
                "name": self.name,
                "role": self.role,
                "state": self.state,
                "sync": self.sync,
                "host_offset_s": self.host_offset_s,
                "host_time": None if self.host_time is None else format_ns(self.host_time),
                "last_correction_s": self.last_correction_s,
                "slew_remaining_s": self.slew_remaining_s,
                "updates": self.updates,
            },
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        f = _load(payload, "status")
        return cls(
            f.name("name"),
            f.choice("role", ("master", "node")),
            f.choice("state", ("online", "offline")),
            f.text("sync"),
            f.optional_float("host_offset_s"),
            f.optional_time("host_time"),
            f.optional_float("last_correction_s"),
            f.optional_float("slew_remaining_s"),
            f.integer("updates"),
        )
