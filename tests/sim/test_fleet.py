"""Fleet rounds on the simulator: thousands of nodes measure themselves against the leader,
a sample reports, one result corrects them all; beside the polled lines, through a
failover, and against forgeries on a signed site."""

import json

from clocksync.core.clock import NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.fleet import REPORTS_WANTED
from clocksync.master.rounds import RoundPlan
from clocksync.nodes.fleet import FleetNode
from clocksync.protocol.envelope import Action, Inbound, Publish
from clocksync.protocol.messages import FleetResult, FleetTick
from clocksync.protocol.signing import Keys, Signer, TrustedKeys
from clocksync.protocol.topics import Topics
from clocksync.roles.role import PassiveRole
from clocksync.sim.delays import Exponential, Path
from clocksync.sim.scenarios import LINES, MASTER, TruthSampler, fleet, kitchen, percentile
from clocksync.sim.world import World

QUIET = Path.symmetric(Exponential(35e-6, 5e-6))
WAKEUP = Exponential(5e-6, 10e-6)
SITE = "manipal-foodie"
TOPICS = Topics(SITE)


def test_a_fleet_converges_beside_the_lines_with_a_bounded_sample_reporting() -> None:
    world = World(3)
    site = kitchen(world, QUIET, wakeup=WAKEUP)
    nodes = fleet(world, QUIET, 600, wakeup=WAKEUP)
    truth = TruthSampler(world, MASTER, period_s=0.5, after_s=8)
    world.run(20)
    last = site.listener.rounds[-5:]
    assert all(summary.fleet_asked == 600 for summary in last)
    assert all(0.6 * REPORTS_WANTED <= s.fleet_reported <= 1.5 * REPORTS_WANTED for s in last)
    assert all(len(summary.participants) == 1 + len(LINES) for summary in last), "kept small"
    assert all(node.corrected >= 15 for node in nodes)
    lines = [e for name, errors in truth.errors.items() if name in LINES for e in errors]
    everyone = truth.all_errors()
    assert percentile(lines, 0.99) < 30e-6
    assert percentile(everyone, 0.99) < 50e-6
    assert max(everyone) < 200e-6


def test_a_fleet_clock_an_hour_off_is_left_out_of_the_average_and_still_corrected() -> None:
    world = World(4)
    site = kitchen(world, QUIET, wakeup=WAKEUP, offset_s=0.5)
    nodes = fleet(world, QUIET, 20, offset_s=0.5, wakeup=WAKEUP)
    stray = FleetNode(name="stray", site=SITE, clock=world.clock(3600.0), status_interval_s=1.0)
    world.add(stray, QUIET)
    world.run(10)
    first = site.listener.rounds[0]
    assert first.fleet_reported == 21, "every clock reports in a small fleet"
    assert all(abs(summary.average_s) < 1.0 for summary in site.listener.rounds)
    distances = world.distances_from(MASTER)
    assert distances["stray"] < 1e-3
    assert max(distances[node.name] for node in nodes) < 1e-3


def test_the_fleet_follows_a_standby_that_takes_over() -> None:
    world = World(5)
    site = kitchen(world, QUIET, wakeup=WAKEUP, offset_s=1.0, standbys=("lab-2",))
    nodes = fleet(world, QUIET, 100, offset_s=1.0, wakeup=WAKEUP)
    world.run(15)
    world.hosts[MASTER].kill()
    world.run(15)
    assert site.listener.rounds[-1].master == "lab-2"
    assert site.listener.rounds[-1].fleet_asked == 100
    assert all(node.watch.leader is not None and node.watch.leader[0] == "lab-2" for node in nodes)
    distances = world.distances_from("lab-2")
    assert max(distances.values()) < 200e-6


LAB, ROGUE = Signer.generate(), Signer.generate()
TRUSTED = TrustedKeys([LAB.private.public_key()])


class Forger(PassiveRole):
    """Sees every tick and answers it with forged results of an hour, unsigned and under
    its own key, and with ticks of a later term from a leader of its own."""

    def __init__(self, world: World) -> None:
        self.name = "mallory"
        self.clock = world.clock()
        self.forged = 0

    def subscriptions(self) -> list[str]:
        return [TOPICS.fleet_tick]

    def on_message(self, message: Inbound) -> list[Action]:
        if TRUSTED.refusal(message.payload) is not None:
            return []  # its own forgery coming back
        tick = FleetTick.decode(message.payload)
        result = FleetResult(tick.master, tick.epoch, tick.round, 3600.0).encode()
        coup = FleetTick("mallory", tick.epoch + 1, tick.round, 0.01, 1.0).encode()
        data = json.loads(message.payload)
        data["window_s"] = 0.0  # a sealed tick, altered
        payloads = [
            (TOPICS.fleet_result, result),
            (TOPICS.fleet_result, ROGUE.seal(result)),
            (TOPICS.fleet_tick, coup),
            (TOPICS.fleet_tick, json.dumps(data).encode()),
        ]
        self.forged += len(payloads)
        return [Publish(topic, payload) for topic, payload in payloads]


def test_on_a_signed_site_no_forged_tick_or_result_moves_a_fleet_clock() -> None:
    world = World(6)
    master = BerkeleyMaster(
        name=MASTER, site=SITE, clock=world.clock(0.3), plan=RoundPlan(), keys=Keys(signer=LAB)
    )
    world.add(master, QUIET, connect_at_s=1.0)
    nodes = fleet(world, QUIET, 30, offset_s=0.5, drift_ppm=50, keys=Keys(trusted=TRUSTED))
    forger = Forger(world)
    world.add(forger, QUIET, connect_at_s=1.0)
    truth = TruthSampler(world, MASTER, after_s=10)
    world.run(30)
    assert forger.forged > 100
    assert all(node.leader_name() == MASTER for node in nodes), "no coup"
    assert all(node.corrected >= 25 for node in nodes), "one correction a round"
    assert max(truth.all_errors()) < 200e-6


def test_fleet_rounds_are_the_same_for_the_same_seed() -> None:
    def run() -> list[float]:
        world = World(8)
        kitchen(world, QUIET, wakeup=WAKEUP)
        nodes = fleet(world, QUIET, 50, wakeup=WAKEUP)
        world.run(6)
        return [node.clock.reading_at(world.now) for node in nodes]

    assert run() == run()


def test_the_fleet_asks_all_through_the_interval_not_in_one_burst() -> None:
    world = World(9)
    plan = RoundPlan(interval_s=4.0, reply_timeout_s=1.0)
    kitchen(world, QUIET, wakeup=WAKEUP, plan=plan)
    fleet(world, QUIET, 200, wakeup=WAKEUP)
    spy = AskSpy(world)
    world.add(spy)
    world.run(30)
    phases = [at % (4 * NS_PER_S) / NS_PER_S for at in spy.asks if at > 15 * NS_PER_S]
    assert len(phases) > 500
    quarters = [sum(q / 4 <= p % 4 / 4 < (q + 1) / 4 for p in phases) for q in range(4)]
    assert all(count > len(phases) / 8 for count in quarters), quarters


class AskSpy(PassiveRole):
    """When each fleet ask reached the broker's other side."""

    def __init__(self, world: World) -> None:
        self.name = "spy"
        self.clock = world.clock()
        self.world = world
        self.asks: list[int] = []

    def subscriptions(self) -> list[str]:
        return [f"{TOPICS.prefix}/berkeley/fleet/ask/+/+"]

    def on_message(self, message: Inbound) -> list[Action]:
        self.asks.append(self.world.now)
        return []


def test_standby_masters_answer_the_fleet_and_every_bound_holds() -> None:
    world = World(8)
    site = kitchen(world, QUIET, wakeup=WAKEUP, offset_s=1.0, standbys=("lab-2", "lab-3"))
    nodes = fleet(world, QUIET, 200, offset_s=1.0, wakeup=WAKEUP)
    checks: list[tuple[float, float]] = []

    def check_bounds() -> None:
        if world.now < 20 * NS_PER_S:
            return
        distances = world.distances_from(MASTER)
        for node in nodes:
            bound = node.error_bound_s()
            if bound is not None:
                checks.append((distances[node.name], bound))

    world.every(0.37, check_bounds)
    world.run(40)
    last = site.listener.rounds[-10:]
    assert all(summary.master == MASTER for summary in last)
    assert all(summary.fleet_asked == 0 for summary in last), "the standbys answer the fleet"
    assert all(0.6 * REPORTS_WANTED <= s.fleet_reported <= 200 for s in last)
    assert min(node.corrected_through for node in nodes) >= last[-2].round
    assert max(world.distances_from(MASTER)[node.name] for node in nodes) < 200e-6
    assert len(checks) > 10_000
    assert all(distance <= bound for distance, bound in checks)
