"""A quick path through paho's MQTT 5 property codec and publish decoding.

paho's Properties builds two lookup tables for every packet and checks every attribute by
scanning them: reading a time request's three properties took about 70 µs and writing an
answer's about 40 µs, more than all of clocksync's own work on the request.  QuickProperties
shares one set of tables and reads and writes Message Expiry Interval, Response Topic and
Correlation Data directly; any other property, or anything irregular, goes through paho's
own code (the tests check that both agree).  `split_publish` reads a whole MQTT 5 PUBLISH
with it, for clocksync's own client class only: nothing here changes paho for anyone else.
"""

import struct
from dataclasses import dataclass
from typing import Self

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

EXPIRY, RESPONSE_TOPIC, CORRELATION = 2, 8, 9
_QUICK = {"MessageExpiryInterval", "ResponseTopic", "CorrelationData"}
_TABLES = ("packetType", "types", "names", "properties")
_TEMPLATE = Properties(PacketTypes.PUBLISH)
_UNSAFE_IN_STRINGS = ("\x00", "\ufeff")


class QuickProperties(Properties):
    """paho's Properties, minus the per-packet cost for the three request/response ones."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 (paho's name)
        object.__setattr__(self, "packetType", packetType)
        for table in _TABLES[1:]:
            object.__setattr__(self, table, getattr(_TEMPLATE, table))

    @classmethod
    def for_publish(
        cls, response_topic: str | None, correlation: bytes | None, expiry_s: int | None
    ) -> Self:
        properties = cls(PacketTypes.PUBLISH)
        for name, value in (
            ("ResponseTopic", response_topic),
            ("CorrelationData", correlation),
            ("MessageExpiryInterval", expiry_s),
        ):
            if value is not None:
                object.__setattr__(properties, name, value)
        return properties

    def _only_quick(self) -> bool:
        present = self.__dict__.keys() - _TABLES
        return self.packetType == PacketTypes.PUBLISH and present <= _QUICK

    def pack(self) -> bytes:
        if not self._only_quick():
            return bytes(super().pack())
        values = self.__dict__
        return pack_publish_properties(
            values.get("ResponseTopic"),
            values.get("CorrelationData"),
            values.get("MessageExpiryInterval"),
        )

    def unpack_quick(self, buffer: bytes) -> int:
        """Read the properties of a publish; raise ValueError for whatever paho should judge
        (another property, a repeat, a string MQTT forbids, a length out of bounds)."""
        length, size = _read_varint(buffer)
        end = size + length
        if end > len(buffer):
            raise ValueError("properties run past the packet")
        at = size
        while at < end:
            identifier = buffer[at]
            at += 1
            value: int | str | bytes
            if identifier == EXPIRY:
                name = "MessageExpiryInterval"
                (value,) = struct.unpack_from("!I", buffer, at)
                at += 4
            elif identifier in (RESPONSE_TOPIC, CORRELATION):
                (count,) = struct.unpack_from("!H", buffer, at)
                raw, at = buffer[at + 2 : at + 2 + count], at + 2 + count
                if len(raw) != count:
                    raise ValueError("truncated property")
                if identifier == CORRELATION:
                    name, value = "CorrelationData", raw
                else:
                    name, value = "ResponseTopic", raw.decode()
                    if any(bad in value for bad in _UNSAFE_IN_STRINGS):
                        raise ValueError("a character MQTT forbids")
            else:
                raise ValueError("another property")
            if name in self.__dict__ or at > end:
                raise ValueError("repeated or overlong property")
            object.__setattr__(self, name, value)
        return end


def pack_publish_properties(
    response_topic: str | None, correlation: bytes | None, expiry_s: int | None
) -> bytes:
    """The properties of an MQTT 5 PUBLISH carrying at most these three, length first."""
    body = b""
    if expiry_s is not None:
        body += struct.pack("!BI", EXPIRY, expiry_s)
    if response_topic is not None:
        topic = response_topic.encode()
        body += struct.pack("!BH", RESPONSE_TOPIC, len(topic)) + topic
    if correlation is not None:
        data = bytes(correlation)
        body += struct.pack("!BH", CORRELATION, len(data)) + data
    return pack_varint(len(body)) + body


def pack_varint(value: int) -> bytes:
    """An MQTT Variable Byte Integer."""
    return bytes(VariableByteIntegers.encode(value))


def publish_packet(topic: str, payload: bytes, *, retain: bool, properties: bytes | None) -> bytes:
    """A whole QoS 0 PUBLISH; `properties` as packed for MQTT 5, None on 3.1.1."""
    name = topic.encode()
    variable = struct.pack("!H", len(name)) + name + (properties or b"")
    header = 0x31 if retain else 0x30
    return bytes((header,)) + pack_varint(len(variable) + len(payload)) + variable + payload


@dataclass(frozen=True)
class WholePublish:
    """A received PUBLISH of QoS 0 or 1 lying whole in a buffer, from `start` to `end`."""

    qos: int
    body_start: int
    end: int


def whole_publish_at(buffer: bytes, start: int) -> WholePublish | None:
    """The PUBLISH of QoS 0 or 1 that lies whole in `buffer` from `start`, or None (another
    packet, QoS 2, or one still arriving)."""
    if start >= len(buffer):
        return None
    header = buffer[start]
    qos = (header >> 1) & 0x03
    if header >> 4 != PacketTypes.PUBLISH or qos > 1:
        return None
    remaining, size = 0, 0
    for index in range(4):
        at = start + 1 + index
        if at >= len(buffer):
            return None
        byte = buffer[at]
        remaining += (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            size = index + 1
            break
    else:
        return None
    body_start = start + 1 + size
    end = body_start + remaining
    return WholePublish(qos, body_start, end) if end <= len(buffer) else None


def _topic_and_id(packet: bytes, qos: int) -> tuple[str, int, int] | None:
    """A PUBLISH's topic and packet id (after the fixed header), and where what follows
    starts; None for an empty topic (an alias), one not UTF-8, a truncated packet."""
    try:
        (length,) = struct.unpack_from("!H", packet)
        end = 2 + length
        if not 0 < length <= len(packet) - 2:
            return None
        topic = packet[2:end].decode()
        mid = 0
        if qos > 0:
            (mid,) = struct.unpack_from("!H", packet, end)
            end += 2
    except (struct.error, UnicodeDecodeError):
        return None
    return topic, mid, end


def split_publish_311(packet: bytes, qos: int) -> tuple[str, int, bytes] | None:
    """An MQTT 3.1.1 PUBLISH's topic, packet id and payload (after the fixed header), or
    None when it does not parse."""
    head = _topic_and_id(packet, qos)
    if head is None:
        return None
    topic, mid, end = head
    return topic, mid, packet[end:]


def _read_varint(buffer: bytes) -> tuple[int, int]:
    """An MQTT Variable Byte Integer at the start of `buffer`: (value, bytes used); raise
    ValueError when it is cut short or longer than four bytes."""
    value = 0
    for index, byte in enumerate(buffer[:4]):
        value += (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    raise ValueError("malformed variable byte integer")


def payload_offset(packet: bytes, mqtt5: bool) -> int | None:
    """Where the payload of an outgoing PUBLISH starts, or None when `packet` is not a whole
    PUBLISH (paho retrying the rest of a partly written one, say)."""
    try:
        if packet[0] >> 4 != PacketTypes.PUBLISH:
            return None
        remaining, size = _read_varint(packet[1:])
        at = 1 + size
        if at + remaining != len(packet):
            return None
        (topic_length,) = struct.unpack_from("!H", packet, at)
        at += 2 + topic_length + (2 if (packet[0] >> 1) & 0x03 else 0)
        if mqtt5:
            properties_length, size = _read_varint(packet[at:])
            at += size + properties_length
    except (ValueError, IndexError, struct.error):
        return None
    return at if at <= len(packet) else None


@dataclass(frozen=True)
class PublishPacket:
    """The parts of a received MQTT 5 PUBLISH that clocksync uses."""

    topic: str
    mid: int
    properties: QuickProperties
    payload: bytes


def split_publish(packet: bytes, qos: int) -> PublishPacket | None:
    """Read an MQTT 5 PUBLISH's variable header and payload (after the fixed header), or
    None for anything paho should judge: an empty topic (a topic alias), a topic that is not
    UTF-8, properties that do not parse, a truncated packet."""
    head = _topic_and_id(packet, qos)
    if head is None:
        return None
    topic, mid, end = head
    properties = QuickProperties(PacketTypes.PUBLISH)
    try:
        used = properties.unpack_quick(packet[end:])
    except (ValueError, IndexError, struct.error):
        return None
    return PublishPacket(topic, mid, properties, packet[end + used :])


TLS_APPLICATION_DATA = 23


def tls_record_ready(data: bytes) -> bool:
    """Whether `data`, the start of a TLS stream, holds whole records up to and including
    an application-data one: what a TLS read consumes next lies entirely within it."""
    at = 0
    while at + 5 <= len(data):
        end = at + 5 + int.from_bytes(data[at + 3 : at + 5], "big")
        if end > len(data):
            return False
        if data[at] == TLS_APPLICATION_DATA:
            return True
        at = end
    return False


def websocket_frame_ready(data: bytes) -> bool:
    """Whether `data`, the start of a WebSocket stream, holds a whole frame: what reading the
    next frame consumes lies entirely within it."""
    if len(data) < 2:
        return False
    length, at = data[1] & 0x7F, 2
    if length == 126:
        length, at = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        length, at = int.from_bytes(data[2:10], "big"), 10
    if data[1] & 0x80:
        at += 4
    return len(data) >= at and len(data) >= at + length
