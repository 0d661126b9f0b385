"""How the error grows with jitter and asymmetry, on the simulator: the real roles in
virtual time, the truth read exactly.

    .venv/bin/python bench/simulate.py [--seconds 300] [--seed 1]

Each scenario puts the master (for Berkeley) or the bank's time server (for Cristian) next
to the broker, on a quiet loopback-like path, and the four lines (or four Cristian devices)
on the scenario's path; every clock starts up to ±1 s off, with no drift unless the scenario
says so (the bank's never drifts).  After a minute to settle, every line's |clock - master|
and every device's |clock - bank| is sampled every 0.1 s, as is whether each device is
within the bound it reports: its last correction's, grown since.  The floor is half the path's
asymmetry, which no two-way exchange can see.  Prints a Markdown table, and the wall time a
simulated hour of the kitchen takes.
"""

import argparse
import logging
import time
from dataclasses import dataclass

from clocksync.sim.delays import PATHS, Fixed, Jitter, Path
from clocksync.sim.scenarios import (
    LINES,
    MASTER,
    TruthSampler,
    bank,
    cristian_node,
    kitchen,
    percentile,
)
from clocksync.sim.world import World

SETTLE_S = 60.0
NEAR = PATHS["loopback"]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    floor_s: float = 0.0
    drift_ppm: float = 0.0


SCENARIOS = (
    Scenario("loopback (20 µs + 5 µs exponential jitter each way)", PATHS["loopback"]),
    Scenario("loopback, every clock drifting up to ±100 ppm", PATHS["loopback"], 0.0, 100.0),
    Scenario("LAN (100 µs + up to 200 µs uniform jitter each way)", PATHS["lan"]),
    Scenario("jitter up to 1 ms each way", Path.symmetric(Jitter(100e-6, 1e-3))),
    Scenario("jitter up to 5 ms each way", Path.symmetric(Jitter(100e-6, 5e-3))),
    Scenario("asymmetric by 0.5 ms", Path(Fixed(600e-6), Fixed(100e-6)), 0.25e-3),
    Scenario("asymmetric by 2 ms", Path(Fixed(2.1e-3), Fixed(100e-6)), 1e-3),
    Scenario("busy Wi-Fi (2 ms + heavy-tailed jitter, 1 % loss)", PATHS["wifi"]),
    Scenario("WAN (30 ms, the way out 2 ms longer)", PATHS["wan"], 1e-3),
)


def berkeley(scenario: Scenario, seconds: float, seed: int) -> list[float]:
    world = World(seed)
    kitchen(
        world,
        scenario.path,
        master_path=NEAR,
        offset_s=1.0,
        drift_ppm=scenario.drift_ppm,
        seed=seed,
    )
    truth = TruthSampler(world, MASTER, after_s=SETTLE_S)
    world.run(SETTLE_S + seconds)
    return truth.all_errors()


def cristian(scenario: Scenario, seconds: float, seed: int) -> tuple[list[float], float]:
    """|device - bank| samples, and the share of them within the device's reported bound."""
    world = World(seed)
    bank(world, NEAR, drift_ppm=0.0)
    devices = [
        cristian_node(
            world,
            f"device-{i}",
            scenario.path,
            offset_s=(i - 1.5) * 0.5,
            drift_ppm=(i - 1.5) * scenario.drift_ppm / 1.5,
        )
        for i in range(len(LINES))
    ]
    truth = TruthSampler(world, "bank", after_s=SETTLE_S)
    within = checked = 0

    def check() -> None:
        nonlocal within, checked
        if world.now < SETTLE_S * 1e9:
            return
        for device in devices:
            bound = device.error_bound_s()
            if bound is not None:
                error = abs(world.true_offset_ns(device.name) - world.true_offset_ns("bank"))
                within += error <= bound * 1e9
                checked += 1

    world.every(0.1, check)
    world.run(SETTLE_S + seconds)
    return truth.all_errors(), within / max(1, checked)


def us(seconds: float) -> str:
    micro = round(seconds * 1e6, 1)
    return f"{micro:.1f} µs" if micro < 1000 else f"{seconds * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="simulated, after settling")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the clocks' first steps are not news here
    print(
        "| path of the lines / devices | floor | Berkeley p50 | p99 "
        "| Cristian p50 | p99 | within bound |"
    )
    print("|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        lines = berkeley(scenario, args.seconds, args.seed)
        devices, coverage = cristian(scenario, args.seconds, args.seed)
        print(
            f"| {scenario.name} | {us(scenario.floor_s) if scenario.floor_s else '0'} "
            f"| {us(percentile(lines, 0.5))} | {us(percentile(lines, 0.99))} "
            f"| {us(percentile(devices, 0.5))} | {us(percentile(devices, 0.99))} "
            f"| {coverage:.1%} |"
        )
    world = World(args.seed)
    kitchen(world, PATHS["loopback"], seed=args.seed)
    started = time.perf_counter()
    world.run(3600)
    print(
        f"a simulated hour of the kitchen took {time.perf_counter() - started:.1f} s of wall time"
    )


if __name__ == "__main__":
    main()
