"""Berkeley on the simulator: the real roles, virtual time, simulated networks."""

import time

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.master.rounds import RoundPlan
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.protocol.messages import Status
from clocksync.sim.delays import PATHS, Exponential, Fixed, Jitter, Path
from clocksync.sim.scenarios import LINES, MASTER, TruthSampler, kitchen, percentile
from clocksync.sim.world import World

QUIET = Path.symmetric(Exponential(35e-6, 5e-6))
WAKEUP = Exponential(5e-6, 10e-6)


def rounds_to_converge(seed: int, path: Path = QUIET) -> int | None:
    """Rounds until every line is within 1 ms of the master, from ±5 s and ±100 ppm."""
    world = World(seed)
    site = kitchen(world, path, seed=seed, wakeup=WAKEUP)
    for _ in range(10):
        seen = len(site.listener.rounds)
        while len(site.listener.rounds) == seen:
            world.run(0.1)
        world.run(0.25)  # the corrections are slewed in
        if max(world.distances_from(MASTER).values()) <= 0.001:
            return site.listener.rounds[-1].round
    return None


@pytest.mark.parametrize("seed", range(8))
def test_the_kitchen_converges_from_seconds_apart_within_two_rounds(seed: int) -> None:
    converged = rounds_to_converge(seed)
    assert converged is not None
    assert converged <= 2


def test_at_zero_drift_a_low_jitter_link_keeps_every_line_within_tens_of_microseconds() -> None:
    world = World(1)
    kitchen(world, QUIET, drift_ppm=0.0, wakeup=WAKEUP)
    truth = TruthSampler(world, MASTER, period_s=0.1, after_s=10)
    world.run(120)
    errors = truth.all_errors()
    assert len(errors) > 4 * 1000
    assert percentile(errors, 0.99) < 30e-6
    assert percentile(errors, 0.5) < 10e-6


def test_an_hour_runs_in_seconds_and_frequency_discipline_stops_the_regrowth() -> None:
    world = World(2)
    kitchen(world, QUIET, drift_ppm=100.0, wakeup=WAKEUP)
    truth = TruthSampler(world, MASTER, period_s=1.0, after_s=30)
    started = time.monotonic()
    world.run(3600)
    wall = time.monotonic() - started
    assert wall < 120, "a simulated hour should take seconds (generous for a busy machine)"
    errors = truth.all_errors()
    assert len(errors) >= 4 * 3500
    # Without frequency discipline the error regrew at the clocks' relative rate (up to
    # 200 ppm) between 1 s rounds: a median near 40 µs and a maximum near 110 µs.
    assert max(errors) < 20e-6
    assert percentile(errors, 0.5) < 5e-6


def test_with_16_s_rounds_the_lines_stay_within_microseconds() -> None:
    """Without frequency discipline 16 s rounds at ±200 ppm left errors of milliseconds; a
    history restarted on every correction over 1 ms would never learn the frequency."""
    world = World(2)
    site = kitchen(world, QUIET, drift_ppm=200.0, wakeup=WAKEUP, plan=RoundPlan(16.0))
    truth = TruthSampler(world, MASTER, period_s=1.0, after_s=16 * 20)
    world.run(16 * 60)
    assert percentile(truth.all_errors(), 0.99) < 20e-6
    master_ppm = site.master.clock.frequency_ppm
    for node in site.nodes:
        line = node.tracking.line()
        assert line is not None
        assert line.slope_error * 1e6 < 1
        assert abs(node.clock.frequency_ppm - master_ppm) > 1, "each corrects its own drift"
        status = Status.decode(node.status().payload)
        assert status.frequency_ppm == pytest.approx(node.clock.frequency_ppm)
        assert status.frequency_error_ppm is not None
        assert status.frequency_error_ppm < 1


@pytest.mark.parametrize(("asymmetry_s", "floor_s"), [(0.0, 0.0), (2e-3, 1e-3), (10e-3, 5e-3)])
def test_an_asymmetric_path_leaves_half_its_asymmetry_as_error(
    asymmetry_s: float, floor_s: float
) -> None:
    lines = Path(Fixed(30e-3 + asymmetry_s), Fixed(30e-3))
    world = World(3)
    plan = RoundPlan(interval_s=2.0)
    kitchen(world, lines, master_path=Path.symmetric(Fixed(30e-3)), drift_ppm=0.0, plan=plan)
    truth = TruthSampler(world, MASTER, period_s=0.5, after_s=20)
    world.run(60)
    # The master cannot tell which way the time went: it sees every line half the
    # asymmetry off, and corrects it that far.
    errors = truth.all_errors()
    assert percentile(errors, 0.5) == pytest.approx(floor_s, abs=50e-6)


def test_jitter_widens_the_error_but_the_best_of_eight_keeps_it_below_the_jitter() -> None:
    results = {}
    for spread in (0.0, 200e-6, 1e-3):
        world = World(4)
        kitchen(world, Path.symmetric(Jitter(100e-6, spread)), drift_ppm=0.0)
        truth = TruthSampler(world, MASTER, period_s=0.25, after_s=10)
        world.run(60)
        results[spread] = percentile(truth.all_errors(), 0.99)
    assert results[0.0] < 2e-6
    assert results[0.0] < results[200e-6] < results[1e-3]
    assert results[1e-3] < 1e-3, "the lowest-delay exchange keeps it under the jitter itself"


def test_busy_wifi_with_loss_and_reordering_still_converges() -> None:
    wifi = PATHS["wifi"]
    reordering = Path(wifi.up, wifi.down, loss=wifi.loss, reorder=True)
    world = World(5)
    site = kitchen(world, reordering, wakeup=WAKEUP)
    truth = TruthSampler(world, MASTER, period_s=0.5, after_s=20)
    world.run(120)
    assert len(site.listener.rounds) >= 110
    assert all(host.counters.lost > 0 for host in world.hosts.values() if host.name in LINES)
    assert percentile(truth.all_errors(), 0.99) < 5e-3
    answered = [sum(e.role == "node" for e in s.participants) for s in site.listener.rounds]
    assert sum(answered) / len(answered) > 3.5, "a lost poll or reply rarely costs a round"


def test_a_node_an_hour_off_is_excluded_and_moves_nobody() -> None:
    world = World(6)
    site = kitchen(world, QUIET, offset_s=0.5, drift_ppm=0.0, wakeup=WAKEUP)
    site.nodes[-1].clock.correct(3600 * NS_PER_S)  # SOLS jumps an hour ahead before it joins
    before = world.true_offset_ns(MASTER)
    while not site.listener.rounds:
        world.run(0.1)
    (first,) = site.listener.rounds
    rows = {row.name: row for row in first.participants}
    assert rows["SOLS"].excluded
    assert not any(rows[name].excluded for name in (MASTER, "KMC", "MIT", "TAPMI"))
    world.run(5)
    assert abs(world.true_offset_ns(MASTER) - before) < 0.5 * NS_PER_S
    assert max(world.distances_from(MASTER).values()) <= 0.001


def test_a_killed_node_drops_out_and_a_late_one_is_picked_up() -> None:
    world = World(7)
    site = kitchen(world, QUIET, lines=LINES[:3], offset_s=1.0, wakeup=WAKEUP)
    world.run(5)
    world.hosts["MIT"].kill()
    world.run(3)
    latest = site.listener.rounds[-1]
    assert {row.name for row in latest.participants} == {MASTER, "KMC", "TAPMI"}
    assert latest.missing == (), "a node whose will says offline is not polled"
    sols = BerkeleyNode(
        name="SOLS", site="manipal-foodie", clock=world.clock(2.0, 50.0), status_interval_s=1.0
    )
    world.add(sols, QUIET, wakeup=WAKEUP, connect_at_s=world.now / NS_PER_S)
    world.run(4)
    assert "SOLS" in {row.name for row in site.listener.rounds[-1].participants}
    assert "MIT" not in world.distances_from(MASTER)
    assert max(world.distances_from(MASTER).values()) <= 0.001


def test_a_frozen_node_is_reported_missing_and_rejoins() -> None:
    world = World(8)
    site = kitchen(world, QUIET, lines=LINES[:3], offset_s=1.0, wakeup=WAKEUP)
    world.run(5)
    mit = world.hosts["MIT"]
    mit.path = Path(Fixed(10.0), Fixed(10.0))  # everything it says arrives too late
    world.run(3)
    frozen = site.listener.rounds[-1]
    assert frozen.missing == ("MIT",)
    mit.path = QUIET
    world.run(25)
    thawed = site.listener.rounds[-1]
    assert thawed.missing == ()
    assert max(world.distances_from(MASTER).values()) <= 0.001


def test_a_thousand_nodes_are_polled_and_corrected() -> None:
    names = [f"line-{index:04d}" for index in range(1000)]
    world = World(9)
    site = kitchen(world, QUIET, lines=names, offset_s=1.0, drift_ppm=0.0)
    while len(site.listener.rounds) < 6:
        world.run(0.5)
    joined = [len(summary.participants) - 1 for summary in site.listener.rounds]
    assert joined[:4] == [64, 192, 448, 960], "new nodes are probed, ever more a round"
    assert joined[-1] == 1000
    assert site.listener.rounds[-1].missing_count == 0
    assert max(world.distances_from(MASTER).values()) <= 0.001


def test_a_run_is_determined_by_its_seed() -> None:
    def summaries(seed: int) -> list[float]:
        world = World(seed)
        site = kitchen(world, PATHS["lan"], seed=seed)
        world.run(10)
        return [s.spread_s for s in site.listener.rounds]

    assert summaries(11) == summaries(11)
    assert summaries(11) != summaries(12)
