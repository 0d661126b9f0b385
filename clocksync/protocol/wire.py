"""The JSON wire format, checked field by field on the way in.

A message is a frozen dataclass whose fields are annotated with their wire type (`Name`,
`Count`, `Seconds`, `Time`...): one declaration gives both the encoder and a decoder that
refuses anything off (not JSON, NaN, a wrong type, an integer where a number is allowed but
too large, a bad name, too long) with MessageError, which callers log and drop.  Every
message carries `v` (the protocol version) and `type`; fields a reader does not know are
ignored and fields with a default may be left out, so later versions can add some.
"""

import json
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, Self, get_type_hints

from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.timefmt import format_ns, parse_ns
from clocksync.protocol.topics import valid_name

VERSION = 1
MAX_PAYLOAD = 4096
MAX_MAGNITUDE_S = 1e9
MAX_TEXT = 64
MAX_TOPIC = 512
MAX_CORRELATION = 64
MAX_PPM = 1e6


class MessageError(ValueError):
    """A payload that is not a valid clocksync message."""


@dataclass(frozen=True)
class Codec:
    """How one field goes to JSON and back; `read` raises MessageError for bad input."""

    read: Callable[[object, str], Any]
    write: Callable[[Any], object] = lambda value: value


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not valid_name(value):
        raise MessageError(f"{where} is not a valid name")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise MessageError(f"{where} must be a short string")
    return value


def _count(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise MessageError(f"{where} must be a non-negative integer")
    return value


def _topic(value: object, where: str) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_TOPIC
        or any(c in value for c in "+#\0")
    ):
        raise MessageError(f"{where} must be a topic name without wildcards")
    return value


def _correlation(value: object, where: str) -> bytes:
    """Correlation data, carried in a payload as hex (MQTT 3.1.1 has no property for it)."""
    if not isinstance(value, str) or not 0 < len(value) <= 2 * MAX_CORRELATION:
        raise MessageError(f"{where} must be 1-{MAX_CORRELATION} bytes in hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MessageError(f"{where} is not hex") from None


def _seconds(value: object, where: str) -> float:
    if type(value) is not int and not (type(value) is float and math.isfinite(value)):
        raise MessageError(f"{where} must be a finite number")
    if abs(value) > MAX_MAGNITUDE_S:  # compared before float(): an int may not fit one
        raise MessageError(f"{where} is out of range")
    return float(value)


def _ppm(value: object, where: str) -> float:
    rate = _seconds(value, where)
    if not 0 <= rate <= MAX_PPM:
        raise MessageError(f"{where} must be between 0 and {MAX_PPM:g} ppm")
    return rate


def _share(value: object, where: str) -> float:
    share = _seconds(value, where)
    if not 0 <= share <= 1:
        raise MessageError(f"{where} must be between 0 and 1")
    return share


def _frequency(value: object, where: str) -> float:
    frequency = _seconds(value, where)
    if abs(frequency) > MAX_PPM:
        raise MessageError(f"{where} must be within ±{MAX_PPM:g} ppm")
    return frequency


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise MessageError(f"{where} must be true or false")
    return value


def _time(value: object, where: str) -> int:
    try:
        return parse_ns(_text(value, where))
    except ValueError as error:
        raise MessageError(f"{where}: {error}") from None


def optional(codec: Codec) -> Codec:
    """The same field, or null."""
    return Codec(
        lambda value, where: None if value is None else codec.read(value, where),
        lambda value: None if value is None else codec.write(value),
    )


def choice(enum: type[StrEnum]) -> Codec:
    """One of a string enum's values, read into the enum."""

    def read(value: object, where: str) -> StrEnum:
        if not isinstance(value, str):
            raise MessageError(f"{where} must be one of {', '.join(enum)}")
        try:
            return enum(value)
        except ValueError:
            raise MessageError(f"{where} must be one of {', '.join(enum)}") from None

    return Codec(read, str)


def listing(codec: Codec) -> Codec:
    """A JSON list of the same field, held as a tuple."""

    def read(value: object, where: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise MessageError(f"{where} must be a list")
        return tuple(codec.read(item, f"{where}[{index}]") for index, item in enumerate(value))

    return Codec(read, lambda values: [codec.write(value) for value in values])


NAME = Codec(_name)
Name = Annotated[str, NAME]
MaybeName = Annotated[str | None, optional(NAME)]
COUNT = Codec(_count)
Count = Annotated[int, COUNT]
MaybeCount = Annotated[int | None, optional(COUNT)]
SECONDS = Codec(_seconds)
Seconds = Annotated[float, SECONDS]
MaybeSeconds = Annotated[float | None, optional(SECONDS)]
Flag = Annotated[bool, Codec(_flag)]
Ppm = Annotated[float, Codec(_ppm)]
Share = Annotated[float, Codec(_share)]
MaybeFrequency = Annotated[float | None, optional(Codec(_frequency))]
TIME = Codec(_time, format_ns)
Time = Annotated[int, TIME]
MaybeTime = Annotated[int | None, optional(TIME)]
MaybeTopic = Annotated[str | None, optional(Codec(_topic))]
MaybeCorrelation = Annotated[bytes | None, optional(Codec(_correlation, bytes.hex))]
AnyRole = Annotated[RoleKind, choice(RoleKind)]
AnyState = Annotated[State, choice(State)]
AnySync = Annotated[SyncMode, choice(SyncMode)]


class WireObject:
    """A dataclass that reads and writes itself as a JSON object, field by annotated field."""

    @classmethod
    @cache
    def codecs(cls) -> dict[str, Codec]:
        hints = get_type_hints(cls, include_extras=True)
        found = {}
        for field in fields(cls):  # type: ignore[arg-type]
            codec = next(m for m in hints[field.name].__metadata__ if isinstance(m, Codec))
            found[field.name] = codec
        return found

    def to_wire(self) -> dict[str, object]:
        return {name: write(getattr(self, name)) for name, write in self._writers()}

    @classmethod
    @cache
    def _writers(cls) -> tuple[tuple[str, Callable[[Any], object]], ...]:
        return tuple((name, codec.write) for name, codec in cls.codecs().items())

    @classmethod
    def from_wire(cls, data: object, where: str) -> Self:
        if not isinstance(data, dict):
            raise MessageError(f"{where} must be a JSON object")
        values = dict(cls._defaults())
        for name, read, required in cls._readers():
            if name in data:
                values[name] = read(data[name], f"{where}.{name}")
            elif required:
                raise MessageError(f"{where} lacks {name!r}")
        # cls(**values), less the frozen dataclass's __init__, which sets each field through
        # object.__setattr__: a tenth of a time server's work per request.
        made = cls.__new__(cls)
        made.__dict__.update(values)
        return made

    @classmethod
    @cache
    def _defaults(cls) -> dict[str, object]:
        assert all(f.default_factory is MISSING for f in fields(cls)), "plain defaults only"  # type: ignore[arg-type]
        return {
            field.name: field.default
            for field in fields(cls)  # type: ignore[arg-type]
            if field.default is not MISSING
        }

    @classmethod
    @cache
    def _readers(cls) -> tuple[tuple[str, Callable[[object, str], Any], bool], ...]:
        """Per field: its name, its reader, and whether a sender must give it; a time
        server reads thousands of messages a second through this."""
        defaulted = cls.defaulted()
        return tuple(
            (name, codec.read, name not in defaulted) for name, codec in cls.codecs().items()
        )

    @classmethod
    @cache
    def defaulted(cls) -> frozenset[str]:
        """Fields a sender may leave out: those added to a message after its first version."""
        return frozenset(
            field.name
            for field in fields(cls)  # type: ignore[arg-type]
            if field.default is not MISSING or field.default_factory is not MISSING
        )

    @classmethod
    def codec(cls) -> Codec:
        """This object as a field of another."""
        return Codec(cls.from_wire, lambda value: value.to_wire())


class Message(WireObject):
    """A top-level message: `kind` is its `type`; `limit` caps its size in bytes; `subject`
    names the field that must match the participant named in its topic, if any; `stamped`
    names its send timestamp, if it has one; `sealed` says whether it bears time."""

    kind: ClassVar[str]
    limit: ClassVar[int] = MAX_PAYLOAD
    subject: ClassVar[str | None] = None
    stamped: ClassVar[str | None] = None
    """A time field written last, read as late as possible: see encode_stamped."""
    sealed: ClassVar[bool] = False
    """A message that can move a clock, which a participant holding trusted keys accepts
    only under a seal (clocksync.protocol.signing)."""

    def encode(self) -> bytes:
        return dump(self.kind, self.to_wire())

    def encode_for_send_time(self) -> bytes:
        """This message with SEND_TIME_MARKER for its `stamped` field, for a link that
        writes the send time in at the last moment (one-step, as PTP hardware does)."""
        assert self.stamped is not None, f"a {self.kind} has no stamped field"
        return dump(self.kind, {**self.to_wire(), self.stamped: SEND_TIME_MARKER})

    def encode_stamped(self, stamp: Callable[[], int]) -> bytes:
        """This message with its `stamped` field replaced by `stamp()`, read after every
        other field is encoded: a send timestamp should be as close to the send as it can."""
        assert self.stamped is not None, f"a {self.kind} has no stamped field"
        body = self.to_wire()
        del body[self.stamped]
        return dump_stamped(self.kind, body, self.stamped, stamp)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls.from_wire(load(payload, cls.kind, cls.limit), cls.kind)


def _reject_constant(name: str) -> float:
    raise MessageError(f"{name} is not a number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(allow_nan=False)
"""Made once: json.loads and json.dumps build a new one for every call with options."""


def load(payload: bytes, kind: str, limit: int) -> dict[str, object]:
    """The JSON object of a `kind` message, its envelope checked."""
    if len(payload) > limit:
        raise MessageError(f"{len(payload)} bytes is more than {limit} for a {kind}")
    try:
        data = _DECODER.decode(payload.decode())
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, or an int too long
        raise MessageError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise MessageError(f"a {kind} must be a JSON object")
    if type(data.get("v")) is not int or data["v"] != VERSION:
        raise MessageError(f"unsupported protocol version in a {kind}")
    if data.get("type") != kind:
        raise MessageError(f"expected a {kind}")
    return data


def dump(kind: str, body: dict[str, object]) -> bytes:
    return _ENCODER.encode({"v": VERSION, "type": kind, **body}).encode()


SEND_TIME_MARKER = "~" * len(format_ns(0))
"""Stands for a send time that the transport writes into the packet just before the send
system call (see Message.encode_for_send_time): the same width as every time from 1970 to
9999, so the packet's length does not change, and never a valid time, so a packet that
left unpatched is refused by its reader."""


def stamp_send_time(payload: bytes, reading_ns: int) -> bytes:
    """`payload` with the send time `reading_ns` in place of SEND_TIME_MARKER.  A time of
    another width (past the year 9999) would change the payload's length: the marker then
    stays, and the reader refuses the message."""
    try:
        stamp = format_ns(reading_ns).encode()
    except (ValueError, OverflowError, OSError):
        return payload
    if len(stamp) != len(SEND_TIME_MARKER):
        return payload
    return payload.replace(SEND_TIME_MARKER.encode(), stamp)


def dump_stamped(kind: str, body: dict[str, object], key: str, stamp: Callable[[], int]) -> bytes:
    """Encode `body`, then read `stamp()` and append it as time field `key`.

    The send timestamp of an exchange should be read as late as possible: here only the
    formatting of that one field lies between the reading and the finished payload.
    """
    head = dump(kind, body)[:-1]
    return head + f', "{key}": "{format_ns(stamp())}"}}'.encode()
