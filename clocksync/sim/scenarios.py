"""The reference scenarios on the simulator, and the truth about them.

`kitchen` is the Manipal Foodie site (the lab's master and four production lines);
`bank` is the Manipal Buddy time server with Cristian clients.  A `Listener` keeps the
round summaries and statuses, as a person with `mosquitto_sub` would; a `TruthSampler`
reads every clock's true error at a fixed period, as the benchmarks read the truth signal.
"""

import contextlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from clocksync.core.clock import NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import RoundPlan
from clocksync.master.timeserver import TimeServer
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.nodes.cristian import CristianNode
from clocksync.nodes.fleet import FleetNode
from clocksync.protocol.envelope import Action, Inbound
from clocksync.protocol.messages import MessageError, RoundSummary
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.protocol.topics import Topics
from clocksync.roles.role import PassiveRole
from clocksync.sim.cpu import BusyCpu
from clocksync.sim.delays import Delay, Exponential, Path
from clocksync.sim.world import World

LINES = ("KMC", "MIT", "TAPMI", "SOLS")
MASTER = "lab"
NUDGE_S = 150e-6
"""The MQTT link's default lead of its PINGREQ before a Berkeley poll or reply
(clocksync.transport.link.NUDGE_S, which the simulator may not import: a test checks they
agree)."""
BROKER_WAKEUP = Exponential(20e-6, 100e-6)
"""How long an idle Mosquitto takes to get to a message here: tens to hundreds of
microseconds (its CPU gone to sleep, more so in a virtual machine)."""


def users_broker(seed: int, *, cpu: BusyCpu | None = None) -> World:
    """A world whose broker is Mosquitto with its default settings, as users run it: Nagle's
    algorithm on, slow to wake when idle, stalling as `cpu` says; its clients nudge it
    before a Berkeley exchange as clocksync's link does."""
    return World(seed, nagle=True, nudge_s=NUDGE_S, broker_wakeup=BROKER_WAKEUP, cpu=cpu)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Listener(PassiveRole):
    """A passive subscriber that keeps every round summary of a site."""

    def __init__(self, world: World, site: str, name: str = "listener") -> None:
        self.name = name
        self.clock = world.clock()
        self.topics = Topics(site)
        self.rounds: list[RoundSummary] = []

    def subscriptions(self) -> list[str]:
        return [self.topics.round]

    def on_message(self, message: Inbound) -> list[Action]:
        with contextlib.suppress(MessageError):
            self.rounds.append(RoundSummary.decode(message.payload))
        return []


@dataclass
class TruthSampler:
    """Every `period_s`, each participant's true distance from `reference`, in seconds,
    once `after_s` of virtual time has passed."""

    world: World
    reference: str
    period_s: float = 0.1
    after_s: float = 0.0
    errors: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.world.every(self.period_s, self._sample)

    def _sample(self) -> None:
        if self.world.now < self.after_s * NS_PER_S or self.reference not in self.world.hosts:
            return
        for name, distance in self.world.distances_from(self.reference).items():
            self.errors.setdefault(name, []).append(distance)

    def all_errors(self) -> list[float]:
        return [error for errors in self.errors.values() for error in errors]


@dataclass
class Kitchen:
    world: World
    master: BerkeleyMaster
    nodes: list[BerkeleyNode]
    listener: Listener
    standbys: list[BerkeleyMaster] = field(default_factory=list)

    def leaders(self, since_round: int = 0) -> set[str]:
        """The masters whose round summaries came, from the `since_round`th summary on."""
        return {summary.master for summary in self.listener.rounds[since_round:]}


def kitchen(
    world: World,
    path: Path,
    *,
    lines: Sequence[str] = LINES,
    seed: int = 7,
    offset_s: float = 5.0,
    drift_ppm: float = 100.0,
    wakeup: Delay | None = None,
    plan: RoundPlan | None = None,
    master_path: Path | None = None,
    standbys: Sequence[str] = (),
    site: str = "manipal-foodie",
    status_interval_s: float = 1.0,
    cpu: BusyCpu | None = None,
    quickack: bool = True,
    master_at_s: float = 1.0,
) -> Kitchen:
    """The master and `lines`, every clock off by up to ±`offset_s` and ±`drift_ppm`
    (seeded), the lines on `path` and the master on `master_path` (default `path`); the
    lines connect at once, the master at `master_at_s`, with `standbys`: more masters, of a
    lower priority than the lab's, on the master's path.  Every participant publishes its
    status every `status_interval_s`, runs on a host whose CPU is `cpu` and ACKs as
    `quickack` says (clocksync.sim.world)."""
    rng = random.Random(seed)

    def clock() -> tuple[float, float]:
        return rng.uniform(-offset_s, offset_s), rng.uniform(-drift_ppm, drift_ppm)

    def a_master(name: str, priority: int) -> BerkeleyMaster:
        master_offset, master_drift = clock()
        return BerkeleyMaster(
            name=name,
            site=site,
            clock=world.clock(master_offset, master_drift),
            plan=plan or RoundPlan(),
            priority=priority,
            status_interval_s=status_interval_s,
        )

    master = a_master(MASTER, 1)
    others = [a_master(name, 0) for name in standbys]
    nodes = []
    for name in lines:
        node_offset, node_drift = clock()
        node = BerkeleyNode(
            name=name,
            site=site,
            clock=world.clock(node_offset, node_drift),
            status_interval_s=status_interval_s,
        )
        world.add(node, path, wakeup=wakeup, cpu=cpu, quickack=quickack)
        nodes.append(node)
    listener = Listener(world, site)
    world.add(listener)
    for a in (master, *others):
        world.add(
            a,
            master_path or path,
            wakeup=wakeup,
            connect_at_s=master_at_s,
            cpu=cpu,
            quickack=quickack,
        )
    return Kitchen(world, master, nodes, listener, others)


def fleet(
    world: World,
    path: Path,
    count: int,
    *,
    seed: int = 11,
    offset_s: float = 5.0,
    drift_ppm: float = 100.0,
    wakeup: Delay | None = None,
    site: str = "manipal-foodie",
    keys: Keys = NO_KEYS,
) -> list[FleetNode]:
    """`count` fleet nodes (`fleet-0`...), each clock off by up to ±`offset_s` and
    ±`drift_ppm` (seeded), on `path`."""
    rng = random.Random(seed)
    nodes = []
    for index in range(count):
        node = FleetNode(
            name=f"fleet-{index}",
            site=site,
            clock=world.clock(rng.uniform(-offset_s, offset_s), rng.uniform(-drift_ppm, drift_ppm)),
            status_interval_s=10.0,
            rng=random.Random(rng.random()),
            random_bytes=world.random_bytes,
            keys=keys,
        )
        world.add(node, path, wakeup=wakeup)
        nodes.append(node)
    return nodes


def cristian_node(
    world: World,
    name: str,
    path: Path,
    *,
    offset_s: float = 0.0,
    drift_ppm: float = 0.0,
    interval_s: float = 1.0,
    samples: int = 8,
    wakeup: Delay | None = None,
    site: str = "manipal-buddy",
) -> CristianNode:
    node = CristianNode(
        name=name,
        site=site,
        clock=world.clock(offset_s, drift_ppm),
        interval_s=interval_s,
        samples=samples,
        timeout_s=0.5,
        random_bytes=world.random_bytes,
    )
    world.add(node, path, wakeup=wakeup)
    return node


def bank(
    world: World,
    path: Path,
    *,
    offset_s: float = 0.8,
    drift_ppm: float = 40.0,
    wakeup: Delay | None = None,
    site: str = "manipal-buddy",
    name: str = "bank",
) -> TimeServer:
    """The bank's reference clock, `offset_s` off true time and drifting."""
    server = TimeServer(name=name, site=site, clock=world.clock(offset_s, drift_ppm))
    world.add(server, path, wakeup=wakeup)
    return server
