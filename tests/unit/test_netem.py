"""The real-network scenarios' floors: half each path's asymmetry."""

import random

import pytest

from clocksync.sim.delays import Fixed, Path
from clocksync.testing.netem import SCENARIOS, floor_s


@pytest.mark.parametrize(
    ("name", "floor"), [("loopback", 0.0), ("lan", 0.0), ("busy", 0.0), ("wan", 0.001)]
)
def test_each_scenario_has_half_its_asymmetry_as_floor(name: str, floor: float) -> None:
    assert floor_s(SCENARIOS[name], random.Random(1)) == pytest.approx(floor, abs=20e-6)


def test_the_floor_is_half_the_difference_of_the_directions() -> None:
    assert floor_s(Path(Fixed(0.006), Fixed(0.002)), random.Random(1), samples=3) == 0.002
