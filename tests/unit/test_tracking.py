"""A clock's history of needs: the weighted line, acquisition, spikes and jumps."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.core.tracking import (
    JUMP_AFTER,
    MIN_FIT_POINTS,
    SPIKE_MIN_POINTS,
    Point,
    Tracking,
    Verdict,
    fit,
)

NS_PER_S = 1_000_000_000
BASE = 7_000 * NS_PER_S
"""A monotonic clock some hours after boot: nanosecond counts far above the line's scatter."""


def on_line(seconds: float, slope_ppm: float, start_ns: int = 3_000_000) -> Point:
    mono = BASE + round(seconds * NS_PER_S)
    return Point(mono, start_ns + round(seconds * NS_PER_S * slope_ppm * 1e-6))


@given(
    slope_ppm=st.floats(-5_000, 5_000),
    start_ns=st.integers(-10 * NS_PER_S, 10 * NS_PER_S),
    count=st.integers(2, 16),
)
def test_a_line_through_exact_points_recovers_its_slope_and_values(
    slope_ppm: float, start_ns: int, count: int
) -> None:
    points = [on_line(16.0 * i, slope_ppm, start_ns) for i in range(count)]
    line = fit(points)
    assert line.slope * 1e6 == pytest.approx(slope_ppm, abs=1e-3)  # whole ns: 1 ppb
    later = BASE + 16 * count * NS_PER_S
    expected = start_ns + 16 * count * NS_PER_S * slope_ppm * 1e-6
    assert line.needed_at(later) == pytest.approx(expected, abs=2)
    if count > 2:
        assert line.slope_error * 1e6 < 1e-3


def test_a_line_needs_two_instants() -> None:
    with pytest.raises(ValueError, match="two points"):
        fit([on_line(0, 0)])
    with pytest.raises(ValueError, match="one instant"):
        fit([on_line(0, 0), on_line(0, 0)])


def test_the_slope_error_shrinks_as_the_history_grows() -> None:
    noise = [30_000, -25_000, 10_000, -40_000, 5_000, 35_000, -15_000, 20_000]
    points = [
        Point(p.mono_ns, p.needed_ns + noise[i % len(noise)])
        for i, p in enumerate(on_line(float(i), 80.0) for i in range(16))
    ]
    short, long = fit(points[:4]), fit(points)
    assert long.slope_error < short.slope_error / 4
    assert long.slope * 1e6 == pytest.approx(80.0, abs=3 * long.slope_error * 1e6)
    assert long.residual_ns == pytest.approx(26_000, rel=0.3)


def test_an_exchange_that_took_longer_weighs_less() -> None:
    quick = [Point(p.mono_ns, p.needed_ns, 200_000) for p in (on_line(i, 0) for i in range(8))]
    held_up = Point(BASE + 8 * NS_PER_S, 3_000_000 + 900_000, 2_000_000)  # off by 900 µs
    weighed = fit([*quick, held_up])
    unweighed = fit([Point(p.mono_ns, p.needed_ns) for p in (*quick, held_up)])
    later = BASE + 9 * NS_PER_S
    assert abs(weighed.needed_at(later) - 3_000_000) < 10_000
    assert abs(unweighed.needed_at(later) - 3_000_000) > 200_000


def test_while_acquiring_every_correction_applies_and_a_large_one_restarts_the_history() -> None:
    tracking = Tracking()
    assert tracking.add(on_line(0, 0, 2 * NS_PER_S)) is Verdict.APPLY
    assert tracking.add(on_line(1, 0)) is Verdict.APPLY
    assert tracking.points == 1, "the move of seconds is not part of the line"
    for i in range(2, 1 + MIN_FIT_POINTS):
        assert tracking.line() is None
        assert tracking.add(on_line(i, 0)) is Verdict.APPLY
    assert tracking.points == MIN_FIT_POINTS
    assert tracking.add(on_line(MIN_FIT_POINTS + 1, 0)) is Verdict.FIT


def steady(slope_ppm: float = 50.0, count: int = 8) -> Tracking:
    tracking = Tracking()
    for i in range(count):
        tracking.add(on_line(i, slope_ppm))
    return tracking


def test_a_spike_is_held_back_and_the_next_good_point_is_taken() -> None:
    tracking = steady()
    spike = on_line(8, 50.0)
    assert tracking.add(Point(spike.mono_ns, spike.needed_ns + 400_000)) is Verdict.HOLD
    assert tracking.held == 1
    assert tracking.points == 8
    assert tracking.add(on_line(9, 50.0)) is Verdict.FIT
    assert tracking.points == 9
    line = tracking.line()
    assert line is not None
    assert line.slope * 1e6 == pytest.approx(50.0, abs=0.01)


def test_a_point_within_half_its_own_delay_of_the_line_is_no_spike() -> None:
    tracking = steady()
    far = on_line(8, 50.0)
    point = Point(far.mono_ns, far.needed_ns + 400_000, delay_ns=1_000_000)
    assert tracking.add(point) is Verdict.FIT


def test_a_short_history_takes_every_point() -> None:
    tracking = steady(count=SPIKE_MIN_POINTS - 1)
    far = on_line(SPIKE_MIN_POINTS, 50.0)
    moved = Point(far.mono_ns, far.needed_ns + 400_000)
    assert tracking.add(moved) is Verdict.FIT


def test_a_lasting_move_of_the_reference_restarts_the_history_from_it() -> None:
    tracking = steady()
    verdicts = []
    for i in range(8, 8 + JUMP_AFTER):
        moved = on_line(i, 50.0, start_ns=3_000_000 + 700_000)
        verdicts.append(tracking.add(moved))
    assert verdicts == [Verdict.HOLD] * (JUMP_AFTER - 1) + [Verdict.APPLY]
    assert tracking.points == JUMP_AFTER
    line = tracking.line()
    assert line is not None
    assert line.needed_at(BASE + 11 * NS_PER_S) == pytest.approx(3_700_000 + 550_000, abs=5)


def test_the_history_keeps_its_newest_points() -> None:
    tracking = Tracking(max_points=4)
    for i in range(10):
        tracking.add(on_line(i, 0))
    assert tracking.points == 4
    with pytest.raises(ValueError, match="at least"):
        Tracking(max_points=MIN_FIT_POINTS - 1)


def test_restart_forgets_the_history() -> None:
    tracking = steady()
    tracking.restart()
    assert tracking.line() is None
    assert tracking.add(on_line(20, 0)) is Verdict.APPLY


def test_a_noisy_history_keeps_a_finite_scatter() -> None:
    tracking = steady(count=2)
    tracking.add(Point(BASE + 2 * NS_PER_S, 3_000_000 + 5_000))
    line = tracking.line()
    assert line is not None
    assert math.isfinite(line.residual_ns)
    assert math.isfinite(line.slope_error)


def test_drift_over_long_rounds_is_no_move() -> None:
    """16 s rounds at 200 ppm: the need moves 3.2 ms a round, all of it drift."""
    tracking = Tracking()
    verdicts = [tracking.add(on_line(16.0 * i, 200.0)) for i in range(5)]
    assert verdicts == [Verdict.APPLY] * MIN_FIT_POINTS + [Verdict.FIT] * 2
    line = tracking.line()
    assert line is not None
    assert line.slope * 1e6 == pytest.approx(200.0, abs=0.01)
