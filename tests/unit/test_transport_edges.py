"""The transport's pure parts: when a peeked TLS record or WebSocket frame is whole, where
an outgoing payload starts, and what a refusal says."""

import ssl
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.transport.packets import (
    payload_offset,
    tls_record_ready,
    websocket_frame_ready,
)
from clocksync.transport.refusals import connect_failure, refused_connection
from clocksync.transport.url import BrokerUrl, TlsFiles


def record(kind: int, length: int) -> bytes:
    return bytes([kind, 3, 3]) + length.to_bytes(2, "big") + b"x" * length


@pytest.mark.parametrize(
    ("queued", "ready"),
    [
        (record(23, 40), True),
        (record(23, 40)[:-1], False),  # the record is still arriving
        (record(22, 10) + record(23, 5), True),  # a handshake message, then data
        (record(22, 10) + record(23, 5)[:3], False),
        (record(23, 5) + record(23, 90)[:10], True),  # the next one may be partial
        (b"", False),
    ],
)
def test_a_tls_read_is_covered_by_the_peek_only_when_the_record_is_whole(
    queued: bytes, ready: bool
) -> None:
    assert tls_record_ready(queued) is ready


@pytest.mark.parametrize(
    ("queued", "ready"),
    [
        (b"\x82\x05hello", True),
        (b"\x82\x05hell", False),
        (b"\x82\x7e" + struct.pack("!H", 300) + b"x" * 300, True),
        (b"\x82\x7e" + struct.pack("!H", 300) + b"x" * 299, False),
        (b"\x82\x7f" + struct.pack("!Q", 3) + b"abc", True),
        (b"\x82", False),
    ],
)
def test_a_websocket_read_is_covered_only_when_the_frame_is_whole(
    queued: bytes, ready: bool
) -> None:
    assert websocket_frame_ready(queued) is ready


@given(st.binary(max_size=40))
def test_peek_parsers_never_raise(queued: bytes) -> None:
    tls_record_ready(queued)
    websocket_frame_ready(queued)


def publish(topic: bytes, payload: bytes, qos: int, properties: bytes) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (b"\x00\x07" if qos else b"") + properties
    body += payload
    return bytes([0x30 | qos << 1, len(body)]) + body


def test_the_payload_of_an_outgoing_publish_is_found() -> None:
    packet = publish(b"t/x", b'{"v": 1}', 1, b"\x00")
    assert packet[payload_offset(packet, True) or 0 :] == b'{"v": 1}'
    plain = publish(b"t/x", b"{}", 0, b"")
    assert plain[payload_offset(plain, False) or 0 :] == b"{}"
    assert payload_offset(packet[3:], True) is None, "the rest of a partly written packet"
    assert payload_offset(b"\x82\x02\x00\x01", True) is None, "not a PUBLISH"


@given(st.binary(max_size=40), st.booleans())
def test_payload_offset_never_raises(packet: bytes, mqtt5: bool) -> None:
    offset = payload_offset(packet, mqtt5)
    assert offset is None or 0 < offset <= len(packet)


BROKER = BrokerUrl.parse("mqtts://broker.lan")


@pytest.mark.parametrize(
    ("code", "name", "url", "says", "permanent"),
    [
        (134, "Bad user name or password", "mqtts://kmc@broker.lan", "CLOCKSYNC_PASSWORD", True),
        (135, "Not authorized", "mqtts://broker.lan", "no anonymous clients", True),
        (135, "Not authorized", "mqtts://kmc@broker.lan", "user kmc may not connect", True),
        (132, "Unsupported protocol version", "mqtts://broker.lan", "--protocol 3.1.1", True),
        (137, "Server busy", "mqtts://broker.lan", "broker's log", False),
    ],
)
def test_a_refused_connection_says_what_to_check(
    code: int, name: str, url: str, says: str, permanent: bool
) -> None:
    refusal = refused_connection(BrokerUrl.parse(url), code, name, password_set=False)
    assert says in refusal.reason
    assert name in refusal.reason
    assert refusal.permanent is permanent


def test_connection_failures_say_what_to_check() -> None:
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate"
    assert "--tls-ca" in connect_failure(BROKER, untrusted).reason
    assert connect_failure(BROKER, untrusted).permanent
    refused = connect_failure(BROKER, ConnectionRefusedError(111, "refused"))
    assert "nothing listens at broker.lan:8883" in refused.reason
    assert not refused.permanent


def test_tls_files_must_come_in_pairs_and_exist() -> None:
    missing = Path("/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        TlsFiles(cert=missing).context()
    with pytest.raises(ValueError, match="cannot use the TLS files"):
        TlsFiles(ca=missing).context()
