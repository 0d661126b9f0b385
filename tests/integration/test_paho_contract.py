"""The contract with paho: clocksync subclasses paho's client and overrides five private
hooks (`_sock_recv`, `_sock_send`, `_packet_read`, `_handle_publish`, `_handle_pingresp`),
and drives it with paho's external-loop calls (`loop_read`, `loop_write`, `loop_misc`).
These tests fail if a paho release stops calling the hooks, instead of clocksync silently
losing its kernel timestamps, leaving send-time markers unpatched, falling back to paho's
slow reading, or no longer timing its nudges."""

import os
import socket
import threading
import time
from pathlib import Path

import paho.mqtt
import pytest

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.timefmt import parse_ns
from clocksync.protocol.wire import SEND_TIME_MARKER, stamp_send_time
from clocksync.testing.localbroker import LocalMosquitto, every_transport
from clocksync.transport.client import MAX_BATCH, PING_RTTS, TCP_QUICKACK
from clocksync.transport.link import MqttLink
from clocksync.transport.url import BrokerUrl, Scheme, TlsFiles


def received(link: MqttLink, count: int, timeout_s: float = 10) -> list[Inbound]:
    messages: list[Inbound] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        messages += [event for event in link.poll(0.05) if isinstance(event, Inbound)]
    return messages


@pytest.mark.parametrize("protocol", list(MqttVersion))
def test_a_received_message_carries_the_kernels_receive_timestamp(
    broker: BrokerUrl, site: str, protocol: MqttVersion
) -> None:
    topic = f"clocksync/{site}/contract/{protocol}"
    listener = MqttLink(broker, f"{site}-listener", subscriptions=[topic], protocol=protocol)
    sender = MqttLink(broker, f"{site}-sender")
    try:
        assert listener.wait_until_ready(10)
        assert sender.wait_until_ready(10)
        before = time.monotonic_ns()
        for qos in (0, 1):
            sender.publish(Publish(topic, b"{}", qos=qos))
        messages = received(listener, 2)
        after = time.monotonic_ns()
    finally:
        listener.close()
        sender.close()
    assert len(messages) == 2
    assert all(message.kernel_stamped for message in messages), "_sock_recv was not called"
    assert all(before <= message.received_mono <= after for message in messages)
    assert listener.counters.kernel_stamped == 2
    assert listener.counters.quick_decoded == 2, "_packet_read was not called"


@pytest.mark.skipif(TCP_QUICKACK is None, reason="TCP_QUICKACK is Linux's")
def test_after_a_read_and_a_send_the_kernel_acknowledges_at_once(
    broker: BrokerUrl, site: str
) -> None:
    """A broker with Nagle's algorithm on holds what it sends next until the last is
    acknowledged: the link leaves its socket in quick-ACK mode after every read and send
    (tests/integration/test_default_broker.py shows what it is for)."""
    assert TCP_QUICKACK is not None
    topic = f"clocksync/{site}/contract/quickack"
    link = MqttLink(broker, f"{site}-quickack", subscriptions=[topic])
    try:
        assert link.wait_until_ready(10)
        sock = link._client.socket()
        assert isinstance(sock, socket.socket)
        link.publish(Publish(topic, b"{}"))
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_QUICKACK) == 1
        assert received(link, 1)
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_QUICKACK) == 1
    finally:
        link.close()


def test_an_outgoing_answer_has_its_send_time_patched_in(broker: BrokerUrl, site: str) -> None:
    topic = f"clocksync/{site}/contract/stamped"
    clock = SoftwareClock(offset_s=12.5)
    listener = MqttLink(broker, f"{site}-listener", subscriptions=[topic])
    sender = MqttLink(
        broker,
        f"{site}-sender",
        finish=lambda payload, mono: stamp_send_time(payload, clock.reading_at(mono)),
    )
    try:
        assert listener.wait_until_ready(10)
        assert sender.wait_until_ready(10)
        payload = b'{"sent": "' + SEND_TIME_MARKER.encode() + b'"}'
        before = clock.now_ns()
        sent_mono = sender.publish(
            Publish(topic, payload, response_topic=f"{topic}/reply", correlation=b"\x07")
        )
        after = clock.now_ns()
        (message,) = received(listener, 1)
    finally:
        listener.close()
        sender.close()
    assert sender.counters.send_stamped == 1, "_sock_send was not called"
    assert sent_mono is not None
    stamped = parse_ns(message.payload.decode()[10:-2])
    assert before <= stamped <= after
    assert stamped == clock.reading_at(sent_mono)
    assert abs(stamped - time.time_ns() - round(12.5 * NS_PER_S)) < NS_PER_S
    assert (message.response_topic, message.correlation) == (f"{topic}/reply", b"\x07")


def test_answers_held_for_a_batch_leave_together_each_with_its_send_time(
    broker: BrokerUrl, site: str
) -> None:
    topic = f"clocksync/{site}/contract/together"
    clock = SoftwareClock(offset_s=-3.0)
    listener = MqttLink(broker, f"{site}-listener", subscriptions=[topic])
    sender = MqttLink(
        broker,
        f"{site}-sender",
        finish=lambda payload, mono: stamp_send_time(payload, clock.reading_at(mono)),
    )
    count = 70  # more than one send group
    try:
        assert listener.wait_until_ready(10)
        assert sender.wait_until_ready(10)
        payload = b'{"sent": "' + SEND_TIME_MARKER.encode() + b'"}'
        sender.hold()
        before = clock.now_ns()
        for index in range(count):
            sent = sender.publish(Publish(topic, payload, correlation=bytes([index + 1])))
            assert sent is None, "held, not sent yet"
        sender.release()
        after = clock.now_ns()
        messages = received(listener, count)
    finally:
        listener.close()
        sender.close()
    assert [message.correlation for message in messages] == [bytes([i + 1]) for i in range(count)]
    stamps = [parse_ns(message.payload.decode()[10:-2]) for message in messages]
    assert all(before <= stamp <= after for stamp in stamps)
    assert stamps == sorted(stamps)
    assert sender.counters.send_stamped == count


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_closed_link_holds_no_socket(broker: BrokerUrl, site: str) -> None:
    before = open_descriptors()
    for index in range(3):
        link = MqttLink(broker, f"{site}-{index}", subscriptions=[f"clocksync/{site}/x"])
        assert link.wait_until_ready(10)
        link.poll(0.01)
        link.close()
    assert open_descriptors() == before


def test_what_arrives_while_connecting_is_kept(broker: BrokerUrl, site: str) -> None:
    topic = f"clocksync/{site}/contract/retained"
    sender = MqttLink(broker, f"{site}-sender")
    listener = MqttLink(broker, f"{site}-listener", subscriptions=[topic])
    try:
        assert sender.wait_until_ready(10)
        sender.publish(Publish(topic, b"kept", retain=True, qos=1))
        sender.poll(0.1)
        assert listener.wait_until_ready(10)
        messages = received(listener, 1)
        sender.publish(Publish(topic, b"", retain=True, qos=1))
        sender.poll(0.1)
    finally:
        listener.close()
        sender.close()
    assert [message.payload for message in messages] == [b"kept"]


@pytest.mark.parametrize("scheme", list(Scheme))
def test_every_transport_carries_kernel_timestamps_and_send_times(
    dev_secrets: Path, scheme: Scheme
) -> None:
    """Under TLS and WebSockets the kernel's timestamp comes from peeking the TCP stream;
    it must still come, and never before the message was sent."""
    tls = TlsFiles(ca=dev_secrets / "certs" / "ca.crt")
    with LocalMosquitto(config=every_transport(dev_secrets / "certs")) as broker:
        url = broker.url_for(scheme)
        topic = f"clocksync/contract/{scheme}"
        clock = SoftwareClock()
        listener = MqttLink(url, "listener", subscriptions=[topic], tls=tls)
        sender = MqttLink(
            url,
            "sender",
            tls=tls,
            finish=lambda payload, mono: stamp_send_time(payload, clock.reading_at(mono)),
        )
        try:
            assert listener.wait_until_ready(10), listener.refusal
            assert sender.wait_until_ready(10), sender.refusal
            arrived = []
            for _ in range(20):
                sender.publish(Publish(topic, b'{"sent": "' + SEND_TIME_MARKER.encode() + b'"}'))
                arrived += received(listener, 1)
        finally:
            listener.close()
            sender.close()
    assert len(arrived) == 20
    stamped = [message for message in arrived if message.kernel_stamped]
    assert len(stamped) >= 15, f"{len(stamped)} of 20 kernel-stamped over {scheme}"
    for message in stamped:
        sent = parse_ns(message.payload.decode()[10:-2])
        assert clock.reading_at(message.received_mono) >= sent
    assert sender.counters.send_stamped == 20


def test_a_flood_is_read_a_bounded_batch_at_a_time(broker: BrokerUrl, site: str) -> None:
    topic = f"clocksync/{site}/contract/flood"
    listener = MqttLink(broker, f"{site}-listener", subscriptions=[topic])
    sender = MqttLink(broker, f"{site}-sender")
    try:
        assert listener.wait_until_ready(10)
        assert sender.wait_until_ready(10)
        for _ in range(3 * MAX_BATCH):
            sender.publish(Publish(topic, b"x" * 3000))
        sender.poll(0.5)
        time.sleep(0.5)
        batches = [len(listener.poll(0.2)) for _ in range(6)]
    finally:
        listener.close()
        sender.close()
    assert max(batches) <= MAX_BATCH + 1
    assert sum(batches) > MAX_BATCH


CONNACK_V5 = b"\x20\x03\x00\x00\x00"
SHUTTING_DOWN_BARE = b"\xe0\x02\x8b\x00"
"""DISCONNECT, reason 0x8B "Server shutting down", no properties."""
SHUTTING_DOWN_SAID = b"\xe0\x12\x8b\x10\x1f\x00\x0dshutting down"
"""The same with a Reason String property."""
PAHO_READS_A_BARE_REASON = tuple(map(int, paho.mqtt.__version__.split(".")[:2])) >= (2, 2)


def scripted_broker(server: socket.socket, ready: threading.Event, goodbye: bytes) -> None:
    """Accept one client, acknowledge its CONNECT, and once `ready` is set, send it
    `goodbye`."""
    peer, _ = server.accept()
    with peer:
        peer.settimeout(10)
        if peer.recv(1024)[:1] != b"\x10":
            return
        peer.sendall(CONNACK_V5)
        if ready.wait(10):
            peer.sendall(goodbye)
            time.sleep(0.5)


@pytest.mark.parametrize(
    "goodbye",
    [
        SHUTTING_DOWN_SAID,
        pytest.param(
            SHUTTING_DOWN_BARE,
            marks=pytest.mark.xfail(
                not PAHO_READS_A_BARE_REASON,
                reason="paho 2.1 reads a reason code only with properties after it",
                strict=True,
            ),
        ),
    ],
    ids=["with-reason-string", "bare"],
)
def test_a_broker_that_says_it_shuts_down_is_reported_so(goodbye: bytes) -> None:
    """Mosquitto 2.0 closes the socket without a word when it stops, so a scripted MQTT 5
    peer plays a broker that says so first, with DISCONNECT "Server shutting down" (0x8B),
    as MQTT 5 allows."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        ready = threading.Event()
        peer = threading.Thread(target=scripted_broker, args=(server, ready, goodbye))
        peer.start()
        link = MqttLink(BrokerUrl("127.0.0.1", server.getsockname()[1]), "shutdown-contract")
        try:
            assert link.wait_until_ready(10)
            ready.set()
            deadline = time.monotonic() + 10
            while link.ready and time.monotonic() < deadline:
                link.poll(0.05)
            assert link.refusal is not None
            assert link.refusal.reason.endswith("is shutting down")
            assert not link.refusal.permanent, "it will be back: retry quickly"
        finally:
            ready.set()
            link.close([])
            peer.join()


@pytest.mark.parametrize("nudge_s", [0.0, 200e-6])
def test_a_timed_publish_wakes_the_broker_first(
    broker: BrokerUrl, site: str, nudge_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"clocksync/{site}/contract/nudge"
    listener = MqttLink(broker, f"{site}-listener", subscriptions=[topic])
    sender = MqttLink(broker, f"{site}-sender", nudge_s=nudge_s)
    try:
        assert listener.wait_until_ready(10)
        assert sender.wait_until_ready(10)
        client = sender._client  # what the link writes, in order
        written: list[tuple[bytes, int]] = []
        write = client._write

        def recording(finished: bytes | bytearray, unfinished: bytes | None) -> int | None:
            written.append((bytes(finished), time.monotonic_ns()))
            return write(finished, unfinished)

        monkeypatch.setattr(client, "_write", recording)
        sender.publish(Publish(topic, b"{}"))
        time.sleep(0.05)
        sent = sender.publish(Publish(topic, b"{}", tag="timed", nudge=True))
        ping_sent = client._ping_sent_mono
        messages = received(listener, 2)
        sender.poll(0.2)  # the broker's PINGRESP, read as paho reads it
        assert sender.ready
        near_rtts = list(client.ping_rtts)
        # A broker whose PINGRESP came late: a PINGREQ after the timed message times the
        # path again, and not again for a while.
        client.ping_rtts.extend([5_000_000] * PING_RTTS)
        sender.publish(Publish(topic, b"{}", tag="timed", nudge=True))
        sender.publish(Publish(topic, b"{}", tag="timed", nudge=True))
        messages += received(listener, 2)
        sender.poll(0.2)
    finally:
        listener.close()
        sender.close()
    assert len(messages) == 4
    kinds = [packet[0] for packet, _ in written]
    if nudge_s:
        assert kinds == [0x30, 0xC0, 0x30, 0x30, 0xC0, 0x30], "a PINGREQ before, then after"
        assert len(near_rtts) == 1
        assert 0 < near_rtts[0] < 0.02e9, "the nudge's round trip, timed"
        (_, pinged), (_, published) = written[1], written[2]
        assert ping_sent is not None
        assert 0 <= pinged - ping_sent < 0.02e9, "timed from the PINGREQ's own send"
        assert published - pinged >= nudge_s * 1e9
        assert sent is not None
        assert sent >= pinged + nudge_s * 1e9, "the send instant is the publish's own"
    else:
        assert kinds == [0x30, 0x30, 0x30, 0x30]
