"""clocksync's paho client: paho subclassed, never patched, for three things.

- **Kernel receive timestamps.**  paho's own timestamp is taken when Python gets round to
  parsing the packet; on a busy host that can be hundreds of microseconds after it arrived,
  and the difference lands, one-sided, in a measured delay.  The kernel's software receive
  timestamp (SO_TIMESTAMPING) does not wait for the process to be scheduled.  On a plain
  TCP socket every read comes with it.  Under TLS or WebSockets the library reads the
  socket itself, so the stream is peeked first (MSG_PEEK): when the next TLS record or
  WebSocket frame lies whole in what is queued, the timestamp of the last segment queued
  is one that the bytes about to be read cannot have arrived after.  Otherwise (a record
  still arriving) the time of the read stands in: late, never early.
- **One-step send times.**  The send instant is read just before the send system call,
  and a payload holding the SEND_TIME_MARKER gets the sender's clock written in then.
- **A quick path for MQTT 5 PUBLISH**, read straight into the inbox with the quick property
  codec (clocksync.transport.packets).

It overrides three of paho's private hooks (`_sock_recv`, `_sock_send`, `_handle_publish`)
and calls three private helpers (`_send_puback`, `_reset_sockets`, and `_in_packet`, the
packet being read), for this client alone.  The contract tests
(tests/integration/test_paho_contract.py) fail if a paho release stops calling the hooks or
drops the helpers; CI runs them with the lowest paho allowed as well as the newest.
"""

import contextlib
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Inbound
from clocksync.protocol.wire import SEND_TIME_MARKER
from clocksync.transport.packets import (
    payload_offset,
    split_publish,
    tls_record_ready,
    websocket_frame_ready,
)

SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
_ANCILLARY_SIZE = 256
_READ_CHUNK = 65536
_MARKER = SEND_TIME_MARKER.encode()
PAHO_PROTOCOLS = {
    MqttVersion.V5: MQTTProtocolVersion.MQTTv5,
    MqttVersion.V311: MQTTProtocolVersion.MQTTv311,
}


def arrival_of(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's software receive timestamp in a recvmsg's ancillary data (realtime ns)."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack_from("qq", payload)
            if seconds:
                return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


@dataclass
class LinkCounters:
    """What the link did, for diagnostics and for the tests that check paho's hooks."""

    received: int = 0
    kernel_stamped: int = 0
    quick_decoded: int = 0
    send_stamped: int = 0


class ClocksyncClient(mqtt.Client):
    """A paho client that notes when each packet arrived and left (see the module).

    With `finish` set, the payload of an outgoing PUBLISH that holds a SEND_TIME_MARKER is
    handed to it with the send instant, and what it returns (of the same length: the send
    time written in, and perhaps a signature) is what is sent.  `raw` is the connection's
    TCP socket under TLS or WebSockets, for peeking; `tls` says which of the two frames the
    stream.
    """

    last_arrival_ns: int | None = None
    last_send_mono: int | None = None
    finish: Callable[[bytes, int], bytes] | None = None
    raw: socket.socket | None = None
    inbox: deque[Inbound]
    counters: LinkCounters
    _mqtt5: bool
    _tls: bool
    _unread: bytes = b""
    _unread_at: int = 0

    @classmethod
    def create(
        cls, client_id: str, protocol: MqttVersion, *, websockets: bool, tls: bool
    ) -> "ClocksyncClient":
        """A client for `protocol` over TCP or WebSockets.  paho's own constructor is left as
        it is, since paho's `reinitialise` calls it again."""
        client = cls(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=PAHO_PROTOCOLS[protocol],
            transport="websockets" if websockets else "tcp",
        )
        client.inbox = deque()
        client.counters = LinkCounters()
        client._mqtt5 = protocol == MqttVersion.V5
        client._tls = tls
        client.on_message = client._on_paho_message
        return client

    def _sock_send(self, buf: bytes | bytearray) -> int:
        self.last_send_mono = mono = time.monotonic_ns()
        if self.finish is not None and _MARKER in buf:
            # One-step: the send time goes into the packet now, not when it was encoded.
            # Only a whole packet is finished: the rest of a partly written one is resent
            # from paho's unfinished copy, whose marker bytes the reader refuses.
            packet = bytes(buf)
            at = payload_offset(packet, self._mqtt5)
            if at is not None:
                payload = self.finish(packet[at:], mono)
                if len(payload) == len(packet) - at:
                    buf = packet[:at] + payload
                    self.counters.send_stamped += 1
        return super()._sock_send(buf)

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho reads a packet in three or more small reads; serve them from one buffered
        read, so a burst of packets costs one system call.  Every packet read from a chunk
        gets the chunk's timestamp, that of its last segment: late for the earlier packets
        in it, never early, so a delay measured with it can only grow."""
        sock = self._sock
        if type(sock) is not socket.socket:
            if not (self._tls and self._sock_pending()):
                self.last_arrival_ns = self._peek_arrival()
            return super()._sock_recv(bufsize)
        if self._unread_at >= len(self._unread):
            data, ancillary, _, _ = sock.recvmsg(_READ_CHUNK, _ANCILLARY_SIZE)
            self.last_arrival_ns = arrival_of(ancillary)
            self._unread, self._unread_at = data, 0
        start = self._unread_at
        self._unread_at = min(start + bufsize, len(self._unread))
        return self._unread[start : self._unread_at]

    def _sock_pending(self) -> int:
        """Decrypted bytes the TLS layer holds: they came with the arrival already noted."""
        sock = self._sock
        return sock.pending() if sock is not None and hasattr(sock, "pending") else 0

    def _peek_arrival(self) -> int | None:
        """The kernel's timestamp of the last segment queued on the raw socket, when the
        next TLS record (or WebSocket frame) lies whole in the queue, else None."""
        raw = self.raw
        if raw is None:
            return None
        try:
            queued, ancillary, _, _ = raw.recvmsg(
                _READ_CHUNK, _ANCILLARY_SIZE, socket.MSG_PEEK | socket.MSG_DONTWAIT
            )
        except OSError:
            return None
        ready = tls_record_ready(queued) if self._tls else websocket_frame_ready(queued)
        return arrival_of(ancillary) if ready else None

    def _handle_publish(self) -> MQTTErrorCode:
        """Read an MQTT 5 PUBLISH of QoS 0 or 1 straight into the inbox, with the quick
        property codec; anything else (3.1.1, QoS 2, a topic alias, a property clocksync
        does not use) goes through paho's own handling and `on_message`."""
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if not self._mqtt5 or qos > 1:
            return super()._handle_publish()
        packet = split_publish(bytes(self._in_packet["packet"]), qos)
        if packet is None:
            return super()._handle_publish()
        self.counters.quick_decoded += 1
        properties = packet.properties.__dict__
        self._take(
            packet.topic,
            packet.payload,
            properties.get("ResponseTopic"),
            properties.get("CorrelationData"),
        )
        if qos == 1:
            return self._send_puback(packet.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _on_paho_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        properties = message.properties
        self._take(
            message.topic,
            bytes(message.payload),
            getattr(properties, "ResponseTopic", None),
            getattr(properties, "CorrelationData", None),
        )

    def _take(
        self, topic: str, payload: bytes, response_topic: str | None, correlation: bytes | None
    ) -> None:
        arrival = self.last_arrival_ns
        if arrival is None:
            received_mono = time.monotonic_ns()
        else:
            # The wall clock is read first: any pause between the two readings makes the
            # converted instant later, never earlier, and a late arrival time only widens
            # a measured delay (an error bound built on it still holds).
            received_mono = arrival - (time.time_ns() - time.monotonic_ns())
            self.counters.kernel_stamped += 1
        self.counters.received += 1
        self.inbox.append(
            Inbound(topic, payload, received_mono, response_topic, correlation, arrival is not None)
        )

    def release(self) -> None:
        """Close every socket the client holds: disconnect() leaves open the wake-up socket
        pair that loop() made.  (paho's public reinitialise() would, but in paho 2.1 it
        fails: it calls the constructor without the callback API version.)"""
        self.drop_raw()
        self._reset_sockets()

    def adopt_raw(self) -> None:
        """After a connect: tune the TCP socket under whatever wraps it, and keep a handle
        on it for peeking when something does."""
        self.drop_raw()
        sock = self.socket()
        if sock is None:
            return
        raw = socket.socket(fileno=os.dup(sock.fileno()))
        # paho leaves Nagle's algorithm on: a reply written while the previous packet
        # awaits a delayed ACK would sit for up to 40 ms inside a measured round trip.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):
            raw.setsockopt(
                socket.SOL_SOCKET,
                SO_TIMESTAMPING,
                SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE,
            )
        if type(sock) is socket.socket:
            raw.close()
        else:
            self.raw = raw

    def drop_raw(self) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    def drop_unread(self) -> None:
        """Forget what was read from a previous connection's socket."""
        self._unread, self._unread_at = b"", 0

    @property
    def buffered(self) -> bool:
        """Whether bytes already read from the socket await parsing."""
        return self._unread_at < len(self._unread)
