"""Participants on simulated hosts, linked to one broker through simulated paths.

A host runs one role exactly as the MQTT driver does: it delivers each message with its
arrival instant (the simulated kernel timestamp), calls the role when its wake-up is due,
publishes what the role returns (writing the sender's clock into the send-time marker at
the send instant, as the transport does) and reports tagged messages' send instants back.
A host may take a while to get to a message (`wakeup`, the scheduler's latency), may stall
now and then on a busy CPU (clocksync.sim.cpu; the broker too), handles one message at a
time, and may be killed (its Last Will goes out) or cut off and reconnected.  A world whose
broker has Nagle's algorithm on (Mosquitto's default) holds messages to a host while its
ACK is due (clocksync.sim.tcp).

All hosts share true time, which is the simulated host clock: a clock's truth is its
reading minus that, as the truth signal reports it from a real host.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from clocksync.core.clock import NS_PER_S, Discipline, SoftwareClock
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Action, Inbound, Publish
from clocksync.protocol.signing import finish_at_send
from clocksync.protocol.wire import SEND_TIME_MARKER
from clocksync.roles.participant import Participant
from clocksync.roles.role import Role, carry_out
from clocksync.sim.broker import SimBroker, Subscriber
from clocksync.sim.cpu import BusyCpu, Stalls
from clocksync.sim.delays import Delay, Fixed, Path
from clocksync.sim.scheduler import Scheduler
from clocksync.sim.tcp import NagleDown

START_WALL_NS = 1_800_000_000 * NS_PER_S
"""True time (the hosts' system clock) when a simulation starts: late 2027."""
_MARKER = SEND_TIME_MARKER.encode()
BROKER_IDLE_NS = 1_000_000
"""A broker with nothing to do for this long has let its CPU sleep (see World)."""
PINGRESP = Publish("$SYS/pingresp", b"")
"""Stands for the broker's answer to a PINGREQ: it travels like a message, to no role."""


@dataclass
class HostCounters:
    sent: int = 0
    received: int = 0
    lost: int = 0


@dataclass(eq=False)
class Host:
    """One participant's machine: its role, its path to the broker, how quickly it runs."""

    world: "World"
    role: Role
    path: Path
    wakeup: Delay
    protocol: MqttVersion
    stalls: Stalls | None = None
    quickack: bool = True
    """The host's kernel ACKs as soon as the process reads (clocksync's transport asks it
    to); else it delays its ACKs, which a Nagle broker waits for."""
    counters: HostCounters = field(default_factory=HostCounters)
    up: bool = False
    cut: bool = False
    """Cut off: whatever it sends or is sent is lost, but the broker does not know."""
    _wake_at: int | None = None
    _wake_generation: int = 0
    _busy_until: int = 0
    _last_up_arrival: int = 0
    _last_down_arrival: int = 0
    _down: NagleDown | None = None

    @property
    def name(self) -> str:
        return self.role.name

    def connect(self) -> None:
        """Connect to the broker: subscribe, get the retained messages, tell the role."""
        world = self.world
        self.up = True
        if world.nagle:  # a new connection: nothing held, nothing awaiting an ACK
            self._down = NagleDown(
                self._transmit,
                world.scheduler.at,
                lambda: world.now,
                lambda: self.path.up.sample(world.rng),
            )
        subscriber = Subscriber(self, self.protocol)
        owed = world.broker.connect(subscriber, self.role.subscriptions(), self.role.will())
        self._perform(self.role.on_connect(world.now))
        for message in owed:
            self._deliver(message, world.now)

    def kill(self) -> None:
        """Vanish without a goodbye: the broker publishes the Last Will."""
        self.up = False
        self._wake_at = None
        self._wake_generation += 1
        will = self.world.broker.disconnect(self, cleanly=False)
        if will is not None:
            self.world.route(will)

    def restart(self, role: Role) -> None:
        """Start again, as a new process: `role` (with a fresh clock) connects now."""
        self.role = role
        self._busy_until = self._last_up_arrival = self._last_down_arrival = 0
        self.connect()

    def stop(self) -> None:
        """Say goodbye and disconnect cleanly."""
        for message in self.role.goodbye():
            self.world.route(message)
        self.up = False
        self._wake_at = None
        self.world.broker.disconnect(self)

    def send(self, message: Publish) -> int | None:
        """Publish `message` now, or, nudged, once a PINGREQ has gone `world.nudge_s`
        before it (the link spinning meanwhile); return the send instant (None when
        disconnected)."""
        world = self.world
        if not self.up:
            return None
        now = world.now
        if message.nudge and world.nudge_s:
            self._ping()
            now += round(world.nudge_s * NS_PER_S)
            self._busy_until = max(self._busy_until, now)
        if _MARKER in message.payload:
            reading = self.role.clock.reading_at(now)
            message = Publish(
                message.topic,
                finish_at_send(message.payload, reading, self.role.signer),
                message.retain,
                message.qos,
                message.response_topic,
                message.correlation,
                message.expiry_s,
            )
        if self.protocol == MqttVersion.V311:
            message = Publish(message.topic, message.payload, message.retain, message.qos)
        self.counters.sent += 1
        if self.cut:
            self.counters.lost += 1
            return now
        if self._down is not None:  # the segment sent carries an ACK
            world.scheduler.at(now, self._down.client_acks)
        if world.rng.random() < self.path.loss:
            self.counters.lost += 1
            return now
        world.arrive(message, self._up_arrival(now), sent_at=now)
        return now

    def _up_arrival(self, now: int) -> int:
        """When something sent at `now` reaches the broker (in order, unless reordering)."""
        arrival = now + self.path.up.sample(self.world.rng)
        if not self.path.reorder:
            arrival = self._last_up_arrival = max(arrival, self._last_up_arrival)
        return arrival

    def _ping(self) -> None:
        """A PINGREQ now: the broker answers with a PINGRESP, which with Nagle on may wait
        for an ACK like any message, and hold what follows it."""
        world = self.world
        if self._down is not None:
            self._down.client_acks()
        if self.cut or world.rng.random() < self.path.loss:
            return
        world.arrive(PINGRESP, self._up_arrival(world.now), sent_at=world.now, to=self)

    def receive(self, message: Publish) -> None:
        """The broker sends `message` down this host's path."""
        if not self.up:
            return
        if self._down is not None:
            self._down.write(message)
        else:
            self._transmit([message], self.world.now)

    def _transmit(self, messages: list[Publish], now: int) -> int:
        """Put `messages` on the wire together at `now`; return when they arrive."""
        world = self.world
        arrival = now + self.path.down.sample(world.rng)
        if not self.path.reorder:
            arrival = self._last_down_arrival = max(arrival, self._last_down_arrival)
        for message in messages:
            if self.cut or world.rng.random() < self.path.loss:
                self.counters.lost += 1
                continue
            world.scheduler.at(arrival, partial(self._deliver, message, arrival))
        return arrival

    def _deliver(self, message: Publish, arrival: int) -> None:
        """The message reached this host at `arrival`; the role gets it once the host has
        woken up and finished what it was doing."""
        world = self.world
        if not self.up:
            return
        handled = max(arrival + self.wakeup.sample(world.rng), self._busy_until)
        if self.stalls is not None:
            handled = self.stalls.released(handled)
        self._busy_until = handled
        inbound = Inbound(
            message.topic,
            message.payload,
            arrival,
            message.response_topic,
            message.correlation,
            kernel_stamped=True,
        )

        def handle() -> None:
            if self.up:
                if self.quickack and self._down is not None:
                    self._down.client_acks()
                if message is PINGRESP:
                    return
                self.counters.received += 1
                self._perform(self.role.on_message(inbound))

        world.scheduler.at(handled, handle)

    def _perform(self, actions: Sequence[Action]) -> None:
        wake = carry_out(self.role, actions, self.send)
        if wake is not None and wake != self._wake_at:
            self._wake_at = wake
            self._wake_generation += 1
            generation = self._wake_generation
            if self.stalls is not None:
                wake = self.stalls.released(max(wake, self.world.now))
            self.world.scheduler.at(wake, lambda: self._timer(generation))

    def _timer(self, generation: int) -> None:
        if self.up and generation == self._wake_generation:
            self._wake_at = None
            self._perform(self.role.on_timer(self.world.now))


class World:
    """Hosts, one broker, virtual time and the truth, all from one seed."""

    def __init__(
        self,
        seed: int = 0,
        *,
        nagle: bool = False,
        cpu: BusyCpu | None = None,
        nudge_s: float | None = None,
        broker_wakeup: Delay | None = None,
    ) -> None:
        """`nagle`: the broker holds small messages while an ACK is due (see
        clocksync.sim.tcp); `cpu`: the broker's process stalls so (clocksync.sim.cpu);
        `nudge_s`: a message marked `nudge` leaves this long after a PINGREQ, as the MQTT
        link sends it (clocksync.transport.link; None: at once, and no PINGREQ);
        `broker_wakeup`: how long the broker takes to get to a message after it was idle
        for BROKER_IDLE_NS or more (its CPU gone to sleep); an awake broker handles each in
        turn."""
        self.rng = random.Random(seed)
        self.scheduler = Scheduler()
        self.broker = SimBroker()
        self.hosts: dict[str, Host] = {}
        self.nagle = nagle
        self.nudge_s = nudge_s
        self._broker_wakeup = broker_wakeup
        self._broker_busy_until = 0
        self._broker_stalls = None if cpu is None else Stalls(cpu, self.rng.getrandbits(64))

    @property
    def now(self) -> int:
        """True time since the simulation began, ns: every host's monotonic clock."""
        return self.scheduler.now

    def wall_ns(self) -> int:
        """True time as a system clock shows it."""
        return START_WALL_NS + self.scheduler.now

    def clock(
        self,
        offset_s: float = 0.0,
        drift_ppm: float = 0.0,
        discipline: Discipline | None = None,
    ) -> SoftwareClock:
        """A participant's clock, `offset_s` off and `drift_ppm` fast, on virtual time."""
        return SoftwareClock(
            offset_s=offset_s,
            drift_ppm=drift_ppm,
            discipline=discipline,
            monotonic_ns=lambda: self.scheduler.now,
            wall_ns=self.wall_ns,
        )

    def random_bytes(self, size: int) -> bytes:
        """Seeded stand-in for the correlation data a client draws."""
        return self.rng.randbytes(size)

    def add(
        self,
        role: Role,
        path: Path | None = None,
        *,
        wakeup: Delay | None = None,
        protocol: MqttVersion = MqttVersion.V5,
        connect_at_s: float | None = 0.0,
        cpu: BusyCpu | None = None,
        quickack: bool = True,
    ) -> Host:
        """Put `role` on a host of its own; it connects at `connect_at_s` (None: not yet);
        its process stalls as `cpu` says; see Host for `quickack`."""
        stalls = None if cpu is None else Stalls(cpu, self.rng.getrandbits(64))
        host = Host(self, role, path or Path(), wakeup or Fixed(), protocol, stalls, quickack)
        self.hosts[role.name] = host
        if connect_at_s is not None:
            self.scheduler.at(round(connect_at_s * NS_PER_S), host.connect)
        return host

    def arrive(
        self, message: Publish, arrival: int, sent_at: int, to: "Host | None" = None
    ) -> None:
        """`message` reaches the broker at `arrival`, which routes it once its process
        runs; a PINGREQ's answer goes back `to` its sender."""
        if self._broker_wakeup is not None:
            if arrival - self._broker_busy_until >= BROKER_IDLE_NS:
                arrival += self._broker_wakeup.sample(self.rng)
            arrival = self._broker_busy_until = max(arrival, self._broker_busy_until)
        if self._broker_stalls is not None:
            arrival = self._broker_stalls.released(arrival)
        if to is not None:
            self.scheduler.at(arrival, lambda: to.receive(message))
            return
        self.scheduler.at(arrival, lambda: self.route(message, sent_at=sent_at))

    def route(self, message: Publish, sent_at: int | None = None) -> None:
        """The broker has `message`: send it down every subscriber's path, unless it
        expired on the way in."""
        expiry = message.expiry_s
        if sent_at is not None and expiry is not None and self.now - sent_at > expiry * NS_PER_S:
            return
        for subscriber, received in self.broker.route(message):
            host = subscriber.client
            assert isinstance(host, Host)
            host.receive(received)

    def run(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass."""
        self.scheduler.run_until(self.now + round(seconds * NS_PER_S))

    def every(self, seconds: float, action: Callable[[], None]) -> None:
        """Call `action` every `seconds` of virtual time from now on."""
        period = round(seconds * NS_PER_S)

        def tick() -> None:
            action()
            self.scheduler.at(self.now + period, tick)

        self.scheduler.at(self.now + period, tick)

    def true_offset_ns(self, name: str) -> int:
        """A participant's clock minus true time, now: the truth signal, exactly."""
        return self.hosts[name].role.clock.reading_at(self.now) - self.wall_ns()

    def distances_from(self, reference: str) -> dict[str, float]:
        """|participant - reference| in seconds for every other connected participant (a
        role with a status; listeners have clocks nobody disciplines)."""
        truth = self.true_offset_ns(reference)
        return {
            name: abs(self.true_offset_ns(name) - truth) / NS_PER_S
            for name, host in self.hosts.items()
            if name != reference and host.up and isinstance(host.role, Participant)
        }
