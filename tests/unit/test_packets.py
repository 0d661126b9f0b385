"""The quick property codec and publish reader agree with paho's own, and hand paho
whatever they do not know."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from clocksync.transport.packets import QuickProperties, split_publish

topics = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00\ufeff"),
    min_size=1,
    max_size=80,
)
QUICK_ERRORS = (ValueError, IndexError, struct.error, UnicodeDecodeError)


def paho_properties(
    response_topic: str | None, correlation: bytes | None, expiry: int | None
) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        properties.ResponseTopic = response_topic
    if correlation is not None:
        properties.CorrelationData = correlation
    if expiry is not None:
        properties.MessageExpiryInterval = expiry
    return properties


def as_dict(properties: Properties) -> dict[str, object]:
    return {
        name: getattr(properties, name)
        for name in ("ResponseTopic", "CorrelationData", "MessageExpiryInterval")
        if hasattr(properties, name)
    }


def publish_body(topic: bytes, qos: int, properties: bytes, payload: bytes) -> bytes:
    """An MQTT 5 PUBLISH after its fixed header."""
    mid = struct.pack("!H", 77) if qos else b""
    return struct.pack("!H", len(topic)) + topic + mid + properties + payload


@given(
    response_topic=st.none() | topics,
    correlation=st.none() | st.binary(min_size=1, max_size=64),
    expiry=st.none() | st.integers(min_value=0, max_value=2**32 - 1),
    payload=st.binary(max_size=20),
)
def test_quick_and_paho_codecs_agree(
    response_topic: str | None, correlation: bytes | None, expiry: int | None, payload: bytes
) -> None:
    reference = paho_properties(response_topic, correlation, expiry)
    quick = QuickProperties.for_publish(response_topic, correlation, expiry)
    assert quick.pack() == reference.pack()
    read = QuickProperties(PacketTypes.PUBLISH)
    assert read.unpack_quick(reference.pack() + payload) == len(reference.pack())
    assert as_dict(read) == as_dict(reference)


def test_other_properties_are_left_to_paho() -> None:
    reference = paho_properties("a/b", b"xy", 5)
    reference.UserProperty = ("k", "v")
    with pytest.raises(ValueError, match="another property"):
        QuickProperties(PacketTypes.PUBLISH).unpack_quick(reference.pack())
    body = publish_body(b"t/x", 0, reference.pack(), b"{}")
    assert split_publish(body, 0) is None


def paho_outcome(buffer: bytes) -> object:
    properties = Properties(PacketTypes.PUBLISH)
    try:
        _, used = properties.unpack(buffer)
    except Exception as error:  # whatever paho raises is the reference
        return type(error)
    return used, as_dict(properties)


@given(buffer=st.binary(max_size=40))
def test_any_bytes_are_refused_or_read_as_paho_reads_them(buffer: bytes) -> None:
    quick = QuickProperties(PacketTypes.PUBLISH)
    try:
        used = quick.unpack_quick(buffer)
    except QUICK_ERRORS:
        return  # left to paho
    assert paho_outcome(buffer) == (used, as_dict(quick))


@pytest.mark.parametrize("qos", [0, 1])
def test_a_publish_is_split_into_topic_properties_and_payload(qos: int) -> None:
    properties = paho_properties("clocksync/s/cristian/reply/me", b"\x01\x02", 1).pack()
    packet = split_publish(
        publish_body(b"clocksync/s/cristian/request", qos, properties, b"{}"), qos
    )
    assert packet is not None
    assert packet.topic == "clocksync/s/cristian/request"
    assert packet.mid == (77 if qos else 0)
    assert packet.payload == b"{}"
    assert as_dict(packet.properties) == {
        "ResponseTopic": "clocksync/s/cristian/reply/me",
        "CorrelationData": b"\x01\x02",
        "MessageExpiryInterval": 1,
    }


@pytest.mark.parametrize(
    "body",
    [
        publish_body(b"", 0, b"\x00", b"{}"),  # a topic alias: paho's business
        publish_body(b"\xff\xfe", 0, b"\x00", b"{}"),  # not UTF-8
        publish_body(b"a/b", 0, b"\x05\x09\x00", b""),  # properties run past the packet
        b"\x00\x09a/b",  # truncated topic
    ],
)
def test_irregular_publishes_are_left_to_paho(body: bytes) -> None:
    assert split_publish(body, 0) is None


@given(body=st.binary(max_size=60), qos=st.sampled_from([0, 1]))
def test_split_publish_never_raises(body: bytes, qos: int) -> None:
    packet = split_publish(body, qos)
    if packet is not None:
        assert packet.topic
