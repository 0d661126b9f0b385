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
- **Quick paths for PUBLISH.**  On plain TCP, every QoS 0 or 1 PUBLISH lying whole in what
  one read brought is taken straight into the inbox (`_packet_read`); others are read
  through paho, MQTT 5 ones with the quick property codec (`_handle_publish`,
  clocksync.transport.packets).  A QoS 0 publish goes straight to the socket when nothing
  is queued before it (`publish_now`).  paho's own path costs about 150 µs a message here
  (a wake-up byte to its loop thread's socket pair, a reason code and properties object
  for each QoS 0 send, a system call per header byte read): more than a time server's
  whole answer.

It overrides five of paho's private hooks (`_sock_recv`, `_sock_send`, `_packet_read`,
`_handle_publish`, `_handle_pingresp`) and uses five private helpers and fields (`_send_puback`,
`_reset_sockets`, `_in_packet`, the packet being read, `_out_packet`, the queue of packets
to write, and `_last_msg_in`/`_last_bytes_received`/`_last_msg_out`, the keep-alive's
clocks), for this client alone.  The contract tests
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
    publish_packet,
    split_publish,
    split_publish_311,
    tls_record_ready,
    websocket_frame_ready,
    whole_publish_at,
)

SO_TIMESTAMPING = 37
TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
"""Linux's; elsewhere ACKs stay as the kernel delays them (see quick_ack)."""
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
_ANCILLARY_SIZE = 256
_READ_CHUNK = 65536
MAX_BATCH = 1000
"""Messages read in one poll at most: under a flood the rest waits in the socket, so the
process's memory stays bounded and the broker, not this process, queues or drops."""
SEND_GROUP = 32
"""Packets written with one system call at most: the first one's send time is early by the
time it takes to finish the others (a microsecond or so each), which only widens the
receiver's measured delay."""
_MARKER = SEND_TIME_MARKER.encode()
PINGREQ = bytes((mqtt.PINGREQ, 0))
PING_RTTS = 8
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


def quick_ack(sock: socket.socket) -> None:
    """Have the kernel acknowledge what arrived at once, and not delay its ACKs for a
    while (Linux's TCP_QUICKACK, which it clears again by itself, hence after every read).

    A broker with Nagle's algorithm on, as Mosquitto is unless `set_tcp_nodelay` says
    otherwise, holds a small message to a client while an earlier one awaits its ACK, and a
    client that only listens between two sends of its own (a master between polls) delays
    that ACK until its next send or for up to 40 ms.  A reply held so travels slowly one
    way only: on a broker with its default settings the master measured lines 5 to 9 ms
    off, every exchange of a round alike.  Acknowledging at once lets the broker send the
    next message within a round trip.  Where the option does not exist (not Linux), the
    broker's `set_tcp_nodelay true` does the same from the other end."""
    if TCP_QUICKACK is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)


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
    ping_rtts: deque[int]
    """The last PING_RTTS nudges' round trips to the broker and back, in ns."""
    _ping_sent_mono: int | None = None
    _unread: bytes = b""
    _unread_at: int = 0
    _drained: bool = True

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
        client.ping_rtts = deque(maxlen=PING_RTTS)
        client.counters = LinkCounters()
        client._mqtt5 = protocol == MqttVersion.V5
        client._tls = tls
        client.on_message = client._on_paho_message
        return client

    def _sock_send(self, buf: bytes | bytearray) -> int:
        sent = super()._sock_send(self._finished(buf))
        self._ack_quickly()
        return sent

    def _ack_quickly(self) -> None:
        """Leave the kernel in quick-ACK mode after a send, which would otherwise take it
        back to delaying its ACKs (see quick_ack)."""
        sock = self.raw if self.raw is not None else self._sock
        if isinstance(sock, socket.socket):
            quick_ack(sock)

    def _finished(
        self, buf: bytes | bytearray, mono: int | None = None, at: int | None = None
    ) -> bytes | bytearray:
        """`buf` as it leaves now (or at `mono`, just before), its send time written in
        (one-step: the send time goes into the packet now, not when it was encoded).  Only
        a whole packet is finished: the rest of one paho wrote in part is resent from
        paho's unfinished copy, whose marker bytes the reader refuses."""
        if mono is None:
            mono = time.monotonic_ns()
        self.last_send_mono = mono
        if self.finish is not None and _MARKER in buf:
            packet = bytes(buf)
            if at is None:
                at = payload_offset(packet, self._mqtt5)
            if at is not None:
                payload = self.finish(packet[at:], mono)
                if len(payload) == len(packet) - at:
                    self.counters.send_stamped += 1
                    return packet[:at] + payload
        return buf

    def publish_now(
        self, topic: str, payload: bytes, *, retain: bool, properties: bytes | None
    ) -> int | None:
        """Write a QoS 0 PUBLISH to the socket at once; return its send instant, or None
        when it did not leave whole (it is then queued, for paho's loop to send the rest).
        `properties` are the packed MQTT 5 ones (None on 3.1.1).  The caller checks that
        nothing waits in paho's queue (`queue_empty`), since this would overtake it."""
        packet = publish_packet(topic, payload, retain=retain, properties=properties)
        return self._write(self._finished(packet), packet)

    def publish_together(self, packets: list[tuple[bytes, int]]) -> None:
        """Write QoS 0 PUBLISH packets (see clocksync.transport.packets.publish_packet),
        each with where its payload starts, with one system call per SEND_GROUP, each
        group's send times written in just before its call: under load, a system call per
        answer costs a time server more than the answer itself.  Same caller's duty as
        `publish_now`."""
        for start in range(0, len(packets), SEND_GROUP):
            group = packets[start : start + SEND_GROUP]
            mono = time.monotonic_ns()
            finished = b"".join(self._finished(packet, mono, at) for packet, at in group)
            self._write(finished, None)

    def _write(self, finished: bytes | bytearray, unfinished: bytes | None) -> int | None:
        """Send `finished`; queue what did not leave (`unfinished`, when given and nothing
        left, so that its send time is written when it does).  The send instant, or None."""
        try:
            written = super()._sock_send(finished)
        except (BlockingIOError, AttributeError, ValueError, OSError):
            # Full, or lost: queued, the loop writes it or finds the connection gone.
            self.enqueue(finished if unfinished is None else unfinished, 0)
            return None
        self._last_msg_out = time.monotonic()
        self._ack_quickly()
        if written < len(finished):
            self.enqueue(finished, written)
            return None
        return self.last_send_mono

    def nudge(self) -> None:
        """Write a PINGREQ at once (when nothing is queued before it): see MqttLink's
        `nudge_s`.  Its round trip is timed when the PINGRESP comes (`ping_rtts`)."""
        if not self.queue_empty:
            return
        self.last_send_mono = mono = time.monotonic_ns()
        if self._write(PINGREQ, None) is not None:
            self._ping_sent_mono = mono

    def _handle_pingresp(self) -> MQTTErrorCode:
        """The broker's answer to a PINGREQ: the nudge's round trip, by the kernel's
        timestamp of its arrival where there is one (paho's own keep-alive pings, which
        no nudge sent, are not timed)."""
        sent, self._ping_sent_mono = self._ping_sent_mono, None
        if sent is not None:
            self.ping_rtts.append(self._arrival_mono() - sent)
        return super()._handle_pingresp()

    @property
    def queue_empty(self) -> bool:
        return not self._out_packet

    def enqueue(self, packet: bytes | bytearray, position: int = 0) -> None:
        """Put a QoS 0 PUBLISH (from `position` on) in paho's queue, for its loop to write."""
        self._out_packet.append(
            {
                "command": mqtt.PUBLISH,
                "mid": 0,
                "qos": 0,
                "pos": position,
                "to_process": len(packet) - position,
                "packet": packet,
                "info": mqtt.MQTTMessageInfo(0),
            }
        )

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho reads a packet in three or more small reads; serve them from one buffered
        read, so a burst of packets costs one system call.  Every packet read from a chunk
        gets the chunk's timestamp, that of its last segment: late for the earlier packets
        in it, never early, so a delay measured with it can only grow."""
        sock = self._sock
        if type(sock) is not socket.socket:
            if not (self._tls and self._sock_pending()):
                self.last_arrival_ns = self._peek_arrival()
            data = super()._sock_recv(bufsize)
            if self.raw is not None:
                quick_ack(self.raw)
            return data
        if self._unread_at >= len(self._unread):
            self._fill()
        start = self._unread_at
        self._unread_at = min(start + bufsize, len(self._unread))
        return self._unread[start : self._unread_at]

    def _fill(self) -> None:
        """Read what has arrived on the TCP socket, with its kernel timestamp."""
        sock = self._sock
        assert isinstance(sock, socket.socket)
        data, ancillary, _, _ = sock.recvmsg(_READ_CHUNK, _ANCILLARY_SIZE)
        quick_ack(sock)
        self.last_arrival_ns = arrival_of(ancillary)
        self._unread, self._unread_at = data, 0
        self._drained = len(data) < _READ_CHUNK

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

    def _packet_read(self) -> MQTTErrorCode:
        """Take every PUBLISH of QoS 0 or 1 lying whole in what was read; leave anything
        else, and what is still arriving, to paho."""
        if self._in_packet["command"] != 0 or type(self._sock) is not socket.socket:
            return super()._packet_read()
        if self._unread_at >= len(self._unread):
            try:
                self._fill()
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not self._unread:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
        taken = False
        while len(self.inbox) < MAX_BATCH and (
            whole := whole_publish_at(self._unread, self._unread_at)
        ):
            body = self._unread[whole.body_start : whole.end]
            if not self._take_packet(body, whole.qos):
                break
            self._unread_at = whole.end
            taken = True
        if not taken:
            return super()._packet_read()
        self._last_msg_in = self._last_bytes_received = time.monotonic()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _take_packet(self, body: bytes, qos: int) -> bool:
        """Take a PUBLISH (its body: after the fixed header) into the inbox, acknowledging
        one of QoS 1; say whether it was taken (else paho reads it)."""
        if self._mqtt5:
            packet = split_publish(body, qos)
            if packet is None:
                return False
            properties = packet.properties.__dict__
            topic, mid, payload = packet.topic, packet.mid, packet.payload
            response_topic = properties.get("ResponseTopic")
            correlation = properties.get("CorrelationData")
        else:
            parts = split_publish_311(body, qos)
            if parts is None:
                return False
            topic, mid, payload = parts
            response_topic = correlation = None
        self.counters.quick_decoded += 1
        self._take(topic, payload, response_topic, correlation)
        if qos == 1:
            self._send_puback(mid)
        return True

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
        stamped = self.last_arrival_ns is not None
        if stamped:
            self.counters.kernel_stamped += 1
        self.counters.received += 1
        self.inbox.append(
            Inbound(topic, payload, self._arrival_mono(), response_topic, correlation, stamped)
        )

    def _arrival_mono(self) -> int:
        """When the packet being read arrived, on the monotonic clock: the kernel's
        timestamp where there is one, else now."""
        arrival = self.last_arrival_ns
        if arrival is None:
            return time.monotonic_ns()
        # The wall clock is read first: any pause between the two readings makes the
        # converted instant later, never earlier, and a late arrival time only widens a
        # measured delay (an error bound built on it still holds).
        return arrival - (time.time_ns() - time.monotonic_ns())

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
    def more_waiting(self) -> bool | None:
        """Whether more has arrived than was handled: on plain TCP, known without a system
        call (what was read and not parsed, or a read that filled the buffer whole); None
        under TLS or WebSockets, whose libraries buffer on their own."""
        if type(self._sock) is not socket.socket:
            return None
        return self.buffered or not self._drained

    @property
    def tls_pending(self) -> bool:
        """Whether the TLS layer holds decrypted bytes not yet read."""
        return self._tls and self._sock_pending() > 0

    @property
    def buffered(self) -> bool:
        """Whether bytes already read from the socket await parsing."""
        return self._unread_at < len(self._unread)
