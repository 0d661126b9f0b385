"""Participants on simulated hosts, linked to one broker through simulated paths.

A host runs one role exactly as the MQTT driver does: it delivers each message with its
arrival instant (the simulated kernel timestamp), calls the role when its wake-up is due,
publishes what the role returns (writing the sender's clock into the send-time marker at
the send instant, as the transport does) and reports tagged messages' send instants back.
A host may take a while to get to a message (`wakeup`, the scheduler's latency), handles one
message at a time, and may be killed (its Last Will goes out) or cut off and reconnected.

All hosts share true time, which is the simulated host clock: a clock's truth is its
reading minus that, as the truth signal reports it from a real host.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clocksync.core.clock import NS_PER_S, Discipline, SoftwareClock
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Action, Inbound, Publish
from clocksync.protocol.signing import finish_at_send
from clocksync.protocol.wire import SEND_TIME_MARKER
from clocksync.roles.participant import Participant
from clocksync.roles.role import Role, carry_out
from clocksync.sim.broker import SimBroker, Subscriber
from clocksync.sim.delays import Delay, Fixed, Path
from clocksync.sim.scheduler import Scheduler

START_WALL_NS = 1_800_000_000 * NS_PER_S
"""True time (the hosts' system clock) when a simulation starts: late 2027."""
_MARKER = SEND_TIME_MARKER.encode()


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
    counters: HostCounters = field(default_factory=HostCounters)
    up: bool = False
    cut: bool = False
    """Cut off: whatever it sends or is sent is lost, but the broker does not know."""
    _wake_at: int | None = None
    _wake_generation: int = 0
    _busy_until: int = 0
    _last_up_arrival: int = 0
    _last_down_arrival: int = 0

    @property
    def name(self) -> str:
        return self.role.name

    def connect(self) -> None:
        """Connect to the broker: subscribe, get the retained messages, tell the role."""
        world = self.world
        self.up = True
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
        """Publish `message` now; return the send instant (None when disconnected)."""
        world = self.world
        if not self.up:
            return None
        now = world.now
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
        if self.cut or world.rng.random() < self.path.loss:
            self.counters.lost += 1
            return now
        arrival = now + self.path.up.sample(world.rng)
        if not self.path.reorder:
            arrival = self._last_up_arrival = max(arrival, self._last_up_arrival)
        world.scheduler.at(arrival, lambda: world.route(message, sent_at=now))
        return now

    def receive(self, message: Publish) -> None:
        """The broker sends `message` down this host's path."""
        world = self.world
        if not self.up:
            return
        if self.cut or world.rng.random() < self.path.loss:
            self.counters.lost += 1
            return
        arrival = world.now + self.path.down.sample(world.rng)
        if not self.path.reorder:
            arrival = self._last_down_arrival = max(arrival, self._last_down_arrival)
        world.scheduler.at(arrival, lambda: self._deliver(message, arrival))

    def _deliver(self, message: Publish, arrival: int) -> None:
        """The message reached this host at `arrival`; the role gets it once the host has
        woken up and finished what it was doing."""
        world = self.world
        if not self.up:
            return
        handled = max(arrival + self.wakeup.sample(world.rng), self._busy_until)
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
                self.counters.received += 1
                self._perform(self.role.on_message(inbound))

        world.scheduler.at(handled, handle)

    def _perform(self, actions: Sequence[Action]) -> None:
        wake = carry_out(self.role, actions, self.send)
        if wake is not None and wake != self._wake_at:
            self._wake_at = wake
            self._wake_generation += 1
            generation = self._wake_generation
            self.world.scheduler.at(wake, lambda: self._timer(generation))

    def _timer(self, generation: int) -> None:
        if self.up and generation == self._wake_generation:
            self._wake_at = None
            self._perform(self.role.on_timer(self.world.now))


class World:
    """Hosts, one broker, virtual time and the truth, all from one seed."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.scheduler = Scheduler()
        self.broker = SimBroker()
        self.hosts: dict[str, Host] = {}

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
    ) -> Host:
        """Put `role` on a host of its own; it connects at `connect_at_s` (None: not yet)."""
        host = Host(self, role, path or Path(), wakeup or Fixed(), protocol)
        self.hosts[role.name] = host
        if connect_at_s is not None:
            self.scheduler.at(round(connect_at_s * NS_PER_S), host.connect)
        return host

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
