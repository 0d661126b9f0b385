"""One MQTT connection, driven from its owner's thread.

The connection (5 by default, 3.1.1 for clients that have nothing newer; over TCP, TLS,
WebSockets or WebSockets over TLS) is driven by `poll()` from the caller's own loop, not
paho's background thread: a message is read and timestamped as soon as its packet arrives
and a publish goes straight to the socket, so no thread hand-off sits inside a measured
round trip and nothing needs a lock.  Reconnection (with backoff), re-subscription, the
Last Will and a clean goodbye are handled here, so its owner only sees messages.  A broker's
refusal is explained (clocksync.transport.refusals), and a permanent one is retried
at the longest interval.  The paho client itself is clocksync.transport.client.
"""

import logging
import os
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.client import topic_matches_sub
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.transport.client import MAX_BATCH, ClocksyncClient, LinkCounters
from clocksync.transport.packets import (
    QuickProperties,
    pack_publish_properties,
    publish_packet,
)
from clocksync.transport.reconnect import Reconnect
from clocksync.transport.refusals import Refusal, connect_failure, refused_connection
from clocksync.transport.url import PASSWORD_ENV, BrokerUrl, TlsFiles

log = logging.getLogger(__name__)

KEEPALIVE_S = 15
SERVER_SHUTTING_DOWN = 139
NUDGE_S = 150e-6
"""How long before a Berkeley poll or reply the link wakes the broker, by default: see
MqttLink's `nudge_s`."""
MAX_NUDGE_S = 0.01
"""The longest lead allowed: the link spins through it."""
NUDGE_WITHIN_S = 1e-3
"""The link nudges while the quickest of its last few nudges came back within this: over a
slower path the broker's wake-up is lost in the path's own spread, and a PINGREQ just
before a message can only hold that message up behind it."""
REPROBE_S = 10.0
"""Over a slower path, how often a PINGREQ after a nudged message times the path again: its
PINGRESP, ahead of the exchange's answer, can hold the answer up as well."""


def _plain_topic(topic: str) -> bool:
    """A topic the quick publish path may write as it is (short enough in UTF-8 at four
    bytes a character, no wildcard); paho judges any other."""
    return 0 < len(topic) < 16384 and "+" not in topic and "#" not in topic


@dataclass(frozen=True)
class Connected:
    """The link (re)connected and the broker acknowledged every subscription."""


LinkEvent = Inbound | Connected


class MqttLink:
    """One connection to the broker, driven by `poll` from the owner's loop.

    `subscriptions` are made on every (re)connect; `will` is the Last Will; `finish` writes
    the send time (and any signature awaiting it) into payloads that hold the
    SEND_TIME_MARKER, at the send instant (see ClocksyncClient); `tls` names the files
    for a TLS broker (mqtts://, wss://); `password` is the user's (default
    $CLOCKSYNC_PASSWORD).  `refusal` says why the last attempt failed.
    Raises ValueError when the TLS files cannot be used.

    `nudge_s`: a publish marked `nudge` (a Berkeley poll or reply) follows a PINGREQ
    by this long, the link spinning meanwhile; 0 turns it off.  A broker idle for a while
    takes tens to hundreds of microseconds longer to forward a message than one that has
    just run (its CPU left idle, more so in a virtual machine): an exchange's first hop
    pays that, while its answer, coming a moment later, finds the broker awake, and the
    difference lands, one-sided, in the measured offset.  Woken by the PINGREQ first, the
    broker is awake for both hops (on loopback here the lines' p50 error fell from 42 to
    7 µs).  Only while the broker is near: once the quickest of the last few nudges' own
    round trips takes longer than NUDGE_WITHIN_S, the link only times the path again,
    every REPROBE_S, with a PINGREQ after a message marked `nudge`, and nudges again once one
    comes back quicker.
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
        tls: TlsFiles | None = None,
        password: str | None = None,
        nudge_s: float = NUDGE_S,
    ) -> None:
        self.broker = broker
        self._nudge_ns = round(nudge_s * 1e9)
        self._reprobe_at = 0.0
        self.protocol = protocol
        self._client_id = client_id
        self._wanted = list(subscriptions)
        self._shared = protocol == MqttVersion.V5  # until the broker's CONNACK says
        self._subscriptions = [_as_subscribed(t, shared=self._shared) for t in subscriptions]
        scheme = broker.scheme
        self._client = ClocksyncClient.create(
            client_id, protocol, websockets=scheme.websockets, tls=scheme.tls
        )
        self._client.finish = finish
        if scheme.websockets:
            self._client.ws_set_options(path=broker.path)
        if scheme.tls:
            self._client.tls_set_context((tls or TlsFiles.from_environment()).context())
        if password is None:
            password = os.environ.get(PASSWORD_ENV)
        self._password_set = password is not None
        if broker.username:
            self._client.username_pw_set(broker.username, password)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_publish = self._handle_acknowledged
        self._confirming: dict[int, str] = {}
        self._held: list[tuple[bytes, int]] | None = None
        self.refusal: Refusal | None = None
        self._awaiting_subacks: set[int] = set()
        self._events: list[LinkEvent] = []
        self.last_delivery_mono = 0
        self._socket_open = False
        self._ready = False
        self._ready_since = 0.0
        self._reconnect = Reconnect()
        self._next_attempt = 0.0

    @property
    def ready(self) -> bool:
        """Connected, acknowledged and subscribed."""
        return self._ready

    def fileno(self) -> int | None:
        """The connection's socket, for an owner waiting on many links at once; None while
        there is none."""
        sock = self._client.socket() if self._socket_open else None
        return None if sock is None else sock.fileno()

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
        result = self._service(timeout_s)
        while (
            result == MQTTErrorCode.MQTT_ERR_SUCCESS
            and len(self._client.inbox) < MAX_BATCH
            and self._more_waiting()
        ):
            result = self._client.loop_read()
        failed = result != MQTTErrorCode.MQTT_ERR_SUCCESS
        events = self._take_events()
        if failed and self._socket_open:
            self._lost(Refusal(f"the broker {self.broker} closed the connection", False))
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
        if not self._nudge_ns or not message.nudge:
            return self._send(message)
        self.release()
        if self._broker_near():
            self._nudge()
            return self._send(message)
        sent = self._send(message)
        now = time.monotonic()
        if now >= self._reprobe_at:
            self._reprobe_at = now + REPROBE_S
            self._client.nudge()  # after the message, only to time the path again
        return sent

    def _send(self, message: Publish) -> int | None:
        v5 = self.protocol == MqttVersion.V5
        quick = message.qos == 0 and _plain_topic(message.topic)
        if quick and self._held is not None and message.tag is None:
            packet = self._packet(message)
            self._held.append((packet, len(packet) - len(message.payload)))
            return None
        self.release()
        if quick and self._client.queue_empty:
            return self._client.publish_now(
                message.topic,
                message.payload,
                retain=message.retain,
                properties=self._properties(message),
            )
        properties = None
        if v5 and (message.response_topic or message.correlation or message.expiry_s):
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
        if message.qos and self.protocol == MqttVersion.V5:
            self._confirming[info.mid] = message.topic
        return self._client.last_send_mono if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def _broker_near(self) -> bool:
        """Whether the quickest of the last few nudges came back within NUDGE_WITHIN_S (or
        none has yet): one held up by a passing stall says nothing of the path."""
        rtts = self._client.ping_rtts
        return not rtts or min(rtts) <= NUDGE_WITHIN_S * 1e9

    def _nudge(self) -> None:
        """Wake the broker `nudge_s` before a nudged message (see the class docstring)."""
        self._client.nudge()
        until = time.monotonic_ns() + self._nudge_ns
        while time.monotonic_ns() < until:
            pass

    def hold(self) -> None:
        """Keep untagged QoS 0 publishes (time answers, say) from now until `release`, to
        write them together: the owner handling a batch of requests does this."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Write what `hold` kept, each with its send time written in just before."""
        held, self._held = self._held, None
        if not held or not self._ready:
            return  # published while disconnected: dropped, as `publish` does
        if self._client.queue_empty:
            self._client.publish_together(held)
        else:
            # Behind a packet paho is still writing: behind it in the queue, in order.
            for packet, _ in held:
                self._client.enqueue(packet)

    def _properties(self, message: Publish) -> bytes | None:
        if self.protocol != MqttVersion.V5:
            return None
        return pack_publish_properties(
            message.response_topic, message.correlation, message.expiry_s
        )

    def _packet(self, message: Publish) -> bytes:
        return publish_packet(
            message.topic,
            message.payload,
            retain=message.retain,
            properties=self._properties(message),
        )

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
                and self._service(0.05) == MQTTErrorCode.MQTT_ERR_SUCCESS
            ):
                pass
        was_open = self._socket_open
        self._socket_open = self._ready = False
        if was_open:
            self._client.disconnect()
            self._service(0.0)
        self._client.release()

    def _take_events(self) -> list[LinkEvent]:
        events = self._events
        inbox = self._client.inbox
        if inbox:
            self.last_delivery_mono = time.monotonic_ns()
            if self._shared:
                events.extend(inbox)
            else:
                events.extend(message for message in inbox if self._subscribed(message.topic))
            inbox.clear()
        self._events = []
        return events

    def _subscribed(self, topic: str) -> bool:
        """Whether a message's topic matches one of the link's subscriptions.  Some brokers
        without shared subscriptions send more: amqtt 0.12 sends every client that connects
        the retained messages of every filter any client has subscribed to.  Such strays
        are dropped."""
        if any(topic_matches_sub(subscription, topic) for subscription in self._subscriptions):
            return True
        log.debug("dropped a message on %s, which %s did not subscribe to", topic, self._client_id)
        return False

    def _attempt_connect(self) -> None:
        self._client.drop_unread()
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as error:
            self._schedule_retry(connect_failure(self.broker, error))
            return
        except Exception as error:  # paho's WebSocket handshake raises its own
            if type(error).__name__ != "WebsocketConnectionError":
                raise
            self._schedule_retry(connect_failure(self.broker, error))
            return
        self._client.adopt_raw()
        self._reconnect.reached()
        self._socket_open = True

    def _schedule_retry(self, refusal: Refusal) -> None:
        self.refusal = refusal
        delay_s = self._reconnect.delay_s(refusal.permanent)
        now = time.monotonic()
        if self._reconnect.worth_logging(refusal.reason, now):
            attempts = self._reconnect.failures
            log.error(
                "%s; retrying in %.1f s%s",
                refusal.reason,
                delay_s,
                f" ({attempts} attempts so far)" if attempts > 1 else "",
            )
        self._next_attempt = now + delay_s

    def _lost(self, refusal: Refusal) -> None:
        if self._ready and self._reconnect.dropped(time.monotonic() - self._ready_since):
            refusal = Refusal(
                f"the broker keeps dropping this connection soon after accepting it: "
                f"another process is connected with the same client id "
                f"({self._client_id}); is one name used twice?",
                permanent=True,
            )
        self._socket_open = self._ready = False
        self._confirming.clear()
        self._client.drop_raw()
        self._schedule_retry(refusal)

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
            self._lost(
                refused_connection(
                    self.broker,
                    reason_code.value,
                    str(reason_code),
                    password_set=self._password_set,
                )
            )
            return
        self.refusal = None
        self._awaiting_subacks.clear()
        self._shared = self.protocol == MqttVersion.V5 and _offers_shared(properties)
        self._subscriptions = [_as_subscribed(t, shared=self._shared) for t in self._wanted]
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
        self._ready_since = time.monotonic()
        self._reconnect.connected()
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
        if reason_code == SERVER_SHUTTING_DOWN:
            self._lost(Refusal(f"the broker {self.broker} is shutting down", permanent=False))
        elif flags.is_disconnect_packet_from_server:
            self._lost(Refusal(f"the broker {self.broker} disconnected: {reason_code}", False))
        else:
            self._lost(Refusal(f"the broker {self.broker} closed the connection", False))

    def _handle_acknowledged(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        """A QoS 1 publish the broker refused (an ACL, say) would otherwise be lost
        silently; QoS 0 ones are, since MQTT does not answer them."""
        topic = self._confirming.pop(mid, None)
        if topic is not None and reason_code.is_failure:
            log.warning("the broker denied a publish on %s: %s", topic, reason_code)

    def _service(self, timeout_s: float) -> MQTTErrorCode:
        """Wait up to `timeout_s` for the socket, then read, write and keep alive as paho's
        loop() would.  paho's loop() waits in select(), which fails on a descriptor past
        1,024 (a process holding thousands of links has them) and keeps a socket pair per
        client for waking its thread; this waits in poll() and needs neither."""
        if timeout_s > 0:
            self._wait(timeout_s)
        client = self._client
        result = client.loop_read()
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and client.want_write():
            result = client.loop_write()
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            result = client.loop_misc()
        return result

    def _more_waiting(self) -> bool:
        """Whether more has arrived.  A packet that arrives after this says no is read at
        the next poll with its kernel timestamp, so its delay does not grow meanwhile."""
        known = self._client.more_waiting
        return self._wait(0.0, writing=False) if known is None else known

    def _wait(self, timeout_s: float, *, writing: bool = True) -> bool:
        """Wait up to `timeout_s` until the socket can be read (or, `writing`, written, if
        something waits to be); say whether it can.  Bytes already read, or decrypted, need
        no wait."""
        if self._client.buffered or self._client.tls_pending:
            return True
        fd = self.fileno()
        if fd is None:
            return False
        events = select.POLLIN
        if writing and self._client.want_write():
            events |= select.POLLOUT
        poller = select.poll()
        poller.register(fd, events)
        return bool(poller.poll(round(timeout_s * 1000)))


def _offers_shared(properties: Properties | None) -> bool:
    """Whether an MQTT 5 broker's CONNACK allows shared subscriptions: absent means yes."""
    return getattr(properties, "SharedSubscriptionAvailable", 1) != 0


def _as_subscribed(subscription: str, *, shared: bool) -> str:
    """The filter to subscribe with.  A broker without shared subscriptions (every 3.1.1
    one, and MQTT 5 ones that say so, as ejabberd's does) would take `$share/GROUP/TOPIC`
    for a topic of that name, which nobody publishes to, or refuse it.  There the link
    subscribes to TOPIC itself, so each of several time servers answers every request (a
    client keeps the first answer and drops the others as unrequested)."""
    if shared or not subscription.startswith("$share/"):
        return subscription
    return subscription.split("/", 2)[2]
