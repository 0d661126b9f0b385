"""One MQTT connection, driven from its owner's thread: the only code that runs paho.

The connection (5 by default, 3.1.1 for clients that have nothing newer) is driven by
`poll()` from the caller's own loop, not paho's background thread: a message is read and
timestamped as soon as its packet arrives and a publish goes straight to the socket, so no
thread hand-off sits inside a measured round trip and nothing needs a lock.  Reconnection
(with backoff), re-subscription, the Last Will and a clean goodbye are handled here, so its
owner only sees messages.

paho is subclassed, never patched: `_ClocksyncClient` overrides three of paho's private
hooks (`_sock_recv`, `_sock_send`, `_handle_publish`) and calls three private helpers
(`_send_puback`, `_reset_sockets`, and `_in_packet`, the packet being read), for this
client alone.  The contract tests (tests/integration/test_paho_contract.py) fail if a paho
release stops calling the hooks or drops the helpers; CI runs them with the lowest paho
allowed as well as the newest.
"""

import contextlib
import logging
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.wire import SEND_TIME_MARKER
from clocksync.transport.packets import QuickProperties, payload_offset, split_publish
from clocksync.transport.url import PASSWORD_ENV, BrokerUrl

log = logging.getLogger(__name__)

KEEPALIVE_S = 15
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
SESSION_TAKEN_OVER = 142
SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
_ANCILLARY_SIZE = 256
_READ_CHUNK = 65536
MAX_BATCH = 1000
"""Messages read in one poll at most: under a flood the rest waits in the socket, so the
process's memory stays bounded and the broker, not this process, queues or drops."""
_MARKER = SEND_TIME_MARKER.encode()
PAHO_PROTOCOLS = {
    MqttVersion.V5: MQTTProtocolVersion.MQTTv5,
    MqttVersion.V311: MQTTProtocolVersion.MQTTv311,
}


@dataclass(frozen=True)
class Connected:
    """The link (re)connected and the broker acknowledged every subscription."""


LinkEvent = Inbound | Connected


@dataclass
class LinkCounters:
    """What the link did, for diagnostics and for the tests that check paho's hooks."""

    received: int = 0
    kernel_stamped: int = 0
    quick_decoded: int = 0
    send_stamped: int = 0


class _ClocksyncClient(mqtt.Client):
    """A paho client that notes when each packet arrived (SO_TIMESTAMPING) and left.

    paho's own timestamp is taken when Python gets round to parsing the packet; on a busy
    host that can be hundreds of microseconds after it arrived, and the difference lands,
    one-sided, in a measured delay.  The kernel's software receive timestamp does not wait
    for the process to be scheduled.  Plain TCP sockets only; elsewhere paho's time is used.
    The send time is read just before the send system call: a publish can return long after
    its packet left, when the broker it woke takes the CPU.  With `finish` set, the payload
    of an outgoing PUBLISH that holds a SEND_TIME_MARKER is handed to it with that instant,
    and what it returns (of the same length: the send time written in, and perhaps a
    signature) is what is sent.
    """

    last_arrival_ns: int | None = None
    last_send_mono: int | None = None
    finish: Callable[[bytes, int], bytes] | None = None
    inbox: deque[Inbound]
    counters: LinkCounters
    _mqtt5: bool
    _unread: bytes = b""
    _unread_at: int = 0

    @classmethod
    def create(cls, client_id: str, protocol: MqttVersion) -> "_ClocksyncClient":
        """A client for `protocol`.  paho's own constructor is left as it is, since paho's
        `reinitialise` calls it again."""
        client = cls(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=PAHO_PROTOCOLS[protocol]
        )
        client.inbox = deque()
        client.counters = LinkCounters()
        client._mqtt5 = protocol == MqttVersion.V5
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
            return super()._sock_recv(bufsize)
        if self._unread_at >= len(self._unread):
            data, ancillary, _, _ = sock.recvmsg(_READ_CHUNK, _ANCILLARY_SIZE)
            self.last_arrival_ns = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(payload) >= 16:
                    seconds, nanoseconds = struct.unpack_from("qq", payload)
                    if seconds:
                        self.last_arrival_ns = seconds * 1_000_000_000 + nanoseconds
            self._unread, self._unread_at = data, 0
        start = self._unread_at
        self._unread_at = min(start + bufsize, len(self._unread))
        return self._unread[start : self._unread_at]

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
        self._reset_sockets()

    def drop_unread(self) -> None:
        """Forget what was read from a previous connection's socket."""
        self._unread, self._unread_at = b"", 0

    @property
    def buffered(self) -> bool:
        """Whether bytes already read from the socket await parsing."""
        return self._unread_at < len(self._unread)


class MqttLink:
    """One connection to the broker, driven by `poll` from the owner's loop.

    `subscriptions` are made on every (re)connect; `will` is the Last Will; `finish` writes
    the send time (and any signature awaiting it) into payloads that hold the
    SEND_TIME_MARKER, at the send instant (see _ClocksyncClient).
    """

    def __init__(
        self,
        broker: BrokerUrl,
        client_id: str,
        *,
        subscriptions: Sequence[str] = (),
        will: Publish | None = None,
        protocol: MqttVersion = MqttVersion.V5,
        finish: Callable[[bytes, int], bytes] | None = None,
    ) -> None:
        self.broker = broker
        self.protocol = protocol
        self._subscriptions = list(subscriptions)
        self._client = _ClocksyncClient.create(client_id, protocol)
        self._client.finish = finish
        if broker.username:
            self._client.username_pw_set(broker.username, os.environ.get(PASSWORD_ENV))
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_subscribe = self._handle_subscribe
        self._awaiting_subacks: set[int] = set()
        self._events: list[LinkEvent] = []
        self.last_delivery_mono = 0
        self._socket_open = False
        self._ready = False
        self._backoff_s = BACKOFF_MIN_S
        self._next_attempt = 0.0

    @property
    def ready(self) -> bool:
        """Connected, acknowledged and subscribed."""
        return self._ready

    @property
    def counters(self) -> LinkCounters:
        return self._client.counters

    def poll(self, timeout_s: float) -> list[LinkEvent]:
        """Wait up to `timeout_s` for traffic and return what it brought; (re)connect when
        due.  Every waiting packet is read, and so timestamped, before any is returned:
        handling one first would add its time to the next one's delay."""
        if not self._socket_open:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout_s))
            else:
                self._attempt_connect()
            return self._take_events()
        result = self._client.loop(timeout_s)
        while (
            result == MQTTErrorCode.MQTT_ERR_SUCCESS
            and len(self._client.inbox) < MAX_BATCH
            and self._readable()
        ):
            result = self._client.loop_read()
        failed = result != MQTTErrorCode.MQTT_ERR_SUCCESS
        events = self._take_events()
        if failed and self._socket_open:
            self._lost(f"lost the connection to {self.broker}")
        return events

    def wait_until_ready(self, timeout_s: float) -> bool:
        """Drive the connection until it is ready or `timeout_s` passes; say which.  What
        arrived meanwhile (the retained messages, say) is kept for the next `poll`."""
        deadline = time.monotonic() + timeout_s
        arrived: list[LinkEvent] = []
        while not self._ready and time.monotonic() < deadline:
            arrived += self.poll(0.05)
        self._events[:0] = arrived
        return self._ready

    def publish(self, message: Publish) -> int | None:
        """Send now if connected; a message published while disconnected is dropped.

        Returns the monotonic instant, in ns, at which the packet was handed to the kernel,
        or None when it was not sent at once.
        """
        if not self._ready:
            return None
        properties = None
        if self.protocol == MqttVersion.V5 and (
            message.response_topic or message.correlation or message.expiry_s
        ):
            properties = QuickProperties.for_publish(
                message.response_topic, message.correlation, message.expiry_s
            )
        self._client.last_send_mono = None
        info = self._client.publish(
            message.topic,
            message.payload,
            qos=message.qos,
            retain=message.retain,
            properties=properties,
        )
        return self._client.last_send_mono if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def close(self, goodbye: Sequence[Publish] = (), timeout_s: float = 2.0) -> None:
        """Publish `goodbye` (the will is not sent on a clean disconnect) and disconnect."""
        if self._ready:
            pending = [
                self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
                for m in goodbye
            ]
            deadline = time.monotonic() + timeout_s
            while (
                self._socket_open
                and not all(info.is_published() for info in pending)
                and time.monotonic() < deadline
            ):
                self._client.loop(0.05)
        was_open = self._socket_open
        self._socket_open = self._ready = False
        if was_open:
            self._client.disconnect()
            self._client.loop(0.05)
        self._client.release()

    def _take_events(self) -> list[LinkEvent]:
        events = self._events
        inbox = self._client.inbox
        if inbox:
            self.last_delivery_mono = time.monotonic_ns()
            events.extend(inbox)
            inbox.clear()
        self._events = []
        return events

    def _attempt_connect(self) -> None:
        self._client.drop_unread()
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as error:
            self._schedule_retry(f"cannot reach broker {self.broker}: {error}")
            return
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            # paho leaves Nagle's algorithm on: a reply written while the previous packet
            # awaits a delayed ACK would sit for up to 40 ms inside a measured round trip.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET,
                    SO_TIMESTAMPING,
                    SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE,
                )
        self._socket_open = True

    def _schedule_retry(self, reason: str) -> None:
        log.error("%s; retrying in %.0f s", reason, self._backoff_s)
        self._next_attempt = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, BACKOFF_MAX_S)

    def _lost(self, reason: str) -> None:
        was_ready = self._ready
        self._socket_open = self._ready = False
        if was_ready:
            self._backoff_s = BACKOFF_MIN_S
        self._schedule_retry(reason)

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            client.disconnect()
            self._lost(f"broker {self.broker} refused the connection: {reason_code}")
            return
        self._backoff_s = BACKOFF_MIN_S
        self._awaiting_subacks.clear()
        for topic in self._subscriptions:
            _, mid = client.subscribe(topic, qos=0)
            if mid is not None:
                self._awaiting_subacks.add(mid)
        if not self._awaiting_subacks:
            self._now_ready()

    def _handle_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        """Ready once the broker has acknowledged every subscription: a message published
        before then would not be delivered to this client."""
        for code in reason_codes:
            if code.is_failure:
                log.error("broker %s refused a subscription: %s", self.broker, code)
        self._awaiting_subacks.discard(mid)
        if not self._awaiting_subacks and self._socket_open and not self._ready:
            self._now_ready()

    def _now_ready(self) -> None:
        self._ready = True
        log.info("connected to %s", self.broker)
        self._events.append(Connected())

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not self._socket_open:
            return
        if reason_code == SESSION_TAKEN_OVER:
            self._lost("another client connected with the same name")
        else:
            self._lost(f"disconnected from {self.broker}: {reason_code}")

    def _readable(self) -> bool:
        """Whether more has arrived."""
        if self._client.buffered:
            return True
        sock = self._client.socket()
        return sock is not None and bool(select.select([sock], [], [], 0)[0])
