"""The quick property codec agrees with paho's own, and hands paho whatever it does not know."""

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from clocksync.mqttprops import QuickProperties

topics = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00\ufeff"),
    min_size=1,
    max_size=80,
)


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
    packed = reference.pack() + payload
    _, used = QuickProperties(PacketTypes.PUBLISH).unpack(packed)
    read = QuickProperties(PacketTypes.PUBLISH)
    read.unpack(packed)
    assert used == len(reference.pack())
    assert as_dict(read) == as_dict(reference)


def test_other_properties_go_through_paho() -> None:
    reference = paho_properties("a/b", b"xy", 5)
    reference.UserProperty = ("k", "v")
    reference.ContentType = "application/json"
    read = QuickProperties(PacketTypes.PUBLISH)
    _, used = read.unpack(reference.pack())
    assert used == len(reference.pack())
    assert getattr(read, "UserProperty") == [("k", "v")]  # noqa: B009 (not typed by paho)
    assert getattr(read, "ContentType") == "application/json"  # noqa: B009
    assert as_dict(read) == {
        "ResponseTopic": "a/b",
        "CorrelationData": b"xy",
        "MessageExpiryInterval": 5,
    }
    assert QuickProperties(PacketTypes.PUBLISH).unpack(reference.pack())[1] == used


def outcome(properties: Properties, buffer: bytes) -> object:
    try:
        _, used = properties.unpack(buffer)
    except Exception as error:  # whatever paho raises is the reference
        return type(error)
    return used, as_dict(properties)


@given(buffer=st.binary(max_size=40))
def test_any_bytes_are_read_as_paho_reads_them(buffer: bytes) -> None:
    assert outcome(QuickProperties(PacketTypes.PUBLISH), buffer) == outcome(
        Properties(PacketTypes.PUBLISH), buffer
    )
