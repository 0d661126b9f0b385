"""Elections on the simulator: one leader at a time, a standby leading within three rounds
of the leader's death or cut-off, no split when it returns, no clock stepping, and the
same under message loss, over many seeds, faster than real time."""

from collections.abc import Callable

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import RoundPlan
from clocksync.protocol.envelope import Action, Publish, Wake
from clocksync.protocol.messages import Leader
from clocksync.protocol.topics import Topics
from clocksync.roles.participant import Participant
from clocksync.roles.role import PassiveRole
from clocksync.sim.delays import Exponential, Path
from clocksync.sim.scenarios import MASTER, Kitchen, kitchen
from clocksync.sim.world import World

QUIET = Path.symmetric(Exponential(35e-6, 5e-6))


def site(world: World, path: Path = QUIET, *, seed: int = 1) -> Kitchen:
    """The kitchen with two standby masters, converged."""
    kitchen_ = kitchen(world, path, seed=seed, offset_s=1.0, drift_ppm=50.0,
                       standbys=("annex", "backup"))  # fmt: skip
    world.run(15)
    return kitchen_


def spread(world: World) -> float:
    """The widest distance between any two live participants' clocks, from the truth (the
    listener and any attacker keep no time)."""
    truths = [world.true_offset_ns(name) for name, host in world.hosts.items()
              if host.up and isinstance(host.role, Participant)]  # fmt: skip
    return (max(truths) - min(truths)) / NS_PER_S


class Watch:
    """Every 0.1 s: that no clock ran backwards (once in service) and none stepped."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.last: dict[str, int] = {}
        self.backwards: list[str] = []
        world.every(0.1, self._look)

    def _look(self) -> None:
        for name, host in self.world.hosts.items():
            if not host.up or name == "listener":
                continue
            reading = host.role.clock.reading_at(self.world.now)
            if reading < self.last.get(name, 0):
                self.backwards.append(name)
            self.last[name] = reading


def first_round_of(kitchen_: Kitchen, leader: str, after: int) -> int | None:
    for index, summary in enumerate(kitchen_.listener.rounds[after:]):
        if summary.master == leader:
            return index
    return None


def test_of_several_masters_the_highest_priority_leads_and_the_others_follow() -> None:
    world = World(1)
    kitchen_ = site(world)
    assert kitchen_.leaders(since_round=3) == {MASTER}
    for standby in kitchen_.standbys:
        assert standby.leading is None
        assert standby.leader_name() == MASTER
        assert standby.in_sync, "a standby keeps the site's time as any node does"
    assert spread(world) < 0.001


@pytest.mark.parametrize("fault", ["killed", "cut off"])
def test_a_standby_leads_within_three_rounds_without_a_step(fault: str) -> None:
    world = World(2)
    kitchen_ = site(world)
    watch = Watch(world)
    before = len(kitchen_.listener.rounds)
    failed_at = world.now
    host = world.hosts[MASTER]
    if fault == "killed":
        host.kill()
    else:
        host.cut = True
    world.run(4.5)
    new_leaders = kitchen_.leaders(since_round=before) - {MASTER}
    assert new_leaders == {"annex"}, "the next by priority, then name"
    first = first_round_of(kitchen_, "annex", before)
    assert first is not None
    world.run(2.5)
    assert spread(world) < 0.001, "back within a millisecond within two more rounds"
    assert not watch.backwards
    for name, other in world.hosts.items():
        if other.up and name not in (MASTER, "listener"):
            assert not other.role.clock.stepped_since(failed_at), f"{name} stepped"


def test_a_leader_that_returns_does_not_split_the_site() -> None:
    world = World(3)
    kitchen_ = site(world)
    world.hosts[MASTER].cut = True
    world.run(6)
    world.hosts[MASTER].cut = False  # the lab comes back, still thinking it leads
    heal = len(kitchen_.listener.rounds)
    world.run(10)
    assert kitchen_.leaders(since_round=heal + 2) == {"annex"}
    assert kitchen_.master.leading is None, "the deposed leader stood down"
    assert kitchen_.master.leader_name() == "annex"
    assert spread(world) < 0.001


def test_a_restarted_leader_of_higher_priority_stands_by() -> None:
    world = World(4)
    kitchen_ = site(world)
    world.hosts[MASTER].kill()
    world.run(5)
    lab = BerkeleyMaster(name=MASTER, site="manipal-foodie", clock=world.clock(10.0),
                         plan=RoundPlan(), priority=1)  # fmt: skip
    world.hosts[MASTER].restart(lab)
    back = len(kitchen_.listener.rounds)
    world.run(10)
    assert kitchen_.leaders(since_round=back) == {"annex"}
    assert lab.leading is None
    assert abs(world.true_offset_ns(MASTER) - world.true_offset_ns("annex")) < 1_000_000, (
        "it came back 10 s off and took the site's time before it could lead or serve"
    )


def faults(world: World, kitchen_: Kitchen, pick: Callable[[], float]) -> None:
    """Kill, cut off and restore masters at random for a minute, under message loss."""
    for _ in range(6):
        world.run(2 + 6 * pick())
        leader = next(iter(kitchen_.leaders(since_round=len(kitchen_.listener.rounds) - 1)))
        host = world.hosts[leader]
        host.cut = True
        world.run(4 + 4 * pick())
        host.cut = False


@pytest.mark.parametrize("seed", range(12))
def test_elections_under_cuts_and_loss_keep_one_leader_and_the_clocks_together(
    seed: int,
) -> None:
    world = World(100 + seed)
    lossy = Path(QUIET.up, QUIET.down, loss=0.02)
    kitchen_ = site(world, lossy, seed=seed)
    watch = Watch(world)
    faults(world, kitchen_, world.rng.random)
    world.run(12)
    last = kitchen_.listener.rounds[-4:]
    assert len({summary.master for summary in last}) == 1, "settled on one leader"
    assert not watch.backwards
    assert spread(world) < 0.001


class LeaderForger(PassiveRole):
    """On an unsigned site, every 5 s a retained leader record naming a master that does
    not exist: in turn an hour ahead of the real leader's term, and a year ahead."""

    def __init__(self, world: World) -> None:
        self.name = "mallory"
        self.clock = world.clock()
        self.topics = Topics("manipal-foodie")
        self.forged = 0

    def subscriptions(self) -> list[str]:
        return []

    def on_connect(self, mono: int) -> list[Action]:
        return [Wake(mono)]

    def on_timer(self, mono: int) -> list[Action]:
        ahead_ms = 3_600_000 if self.forged % 2 == 0 else 365 * 86_400_000
        term = self.clock.host_ns() // 1_000_000 + ahead_ms
        self.forged += 1
        record = Leader("mallory", term, self.clock.now_ns()).encode()
        return [Publish(self.topics.leader, record, retain=True), Wake(mono + 5 * NS_PER_S)]


def test_forged_leader_records_cost_a_round_at_most_and_move_no_clock() -> None:
    world = World(5)
    kitchen_ = site(world)
    watch = Watch(world)
    forger = LeaderForger(world)
    before = len(kitchen_.listener.rounds)
    world.add(forger, QUIET)
    world.run(60)
    assert forger.forged >= 12
    rounds = kitchen_.listener.rounds[before:]
    assert {summary.master for summary in rounds} == {MASTER}, "the lab kept the lead"
    full = [s for s in rounds if len(s.participants) == len(world.hosts) - 2]
    assert len(full) >= len(rounds) - forger.forged, "at most a round lost to each forgery"
    assert spread(world) < 0.001
    assert not watch.backwards
