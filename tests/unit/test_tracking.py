"""A clock's history of needs: acquisition, spikes, jumps, the runs test, and a reference
whose steering is followed exactly."""

import pytest

from clocksync.core.tracking import (
    JUMP_AFTER,
    MIN_FIT_POINTS,
    SPIKE_MIN_POINTS,
    Point,
    Reference,
    Tracking,
    Verdict,
)

NS_PER_S = 1_000_000_000
BASE = 7_000 * NS_PER_S
"""A monotonic clock some hours after boot: nanosecond counts far above the line's scatter."""


def on_line(
    seconds: float, slope_ppm: float, start_ns: int = 3_000_000, delay_ns: int = 0
) -> Point:
    mono = BASE + round(seconds * NS_PER_S)
    needed = start_ns + round(seconds * NS_PER_S * slope_ppm * 1e-6)
    return Point(mono, needed, delay_ns or None)


def steady(slope_ppm: float = 50.0, count: int = 8) -> Tracking:
    tracking = Tracking()
    for i in range(count):
        tracking.add(on_line(i, slope_ppm))
    return tracking


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


def test_the_line_gives_what_the_clock_needs_now_and_its_frequency() -> None:
    tracking = steady(slope_ppm=80.0)
    now = BASE + 9 * NS_PER_S
    assert tracking.needed_at(now) == pytest.approx(3_000_000 + 9 * 80_000, abs=2)
    frequency = tracking.frequency_ppm()
    assert frequency is not None
    assert frequency == pytest.approx(80.0, abs=0.01)


def test_a_spike_is_held_back_and_the_next_good_point_is_taken() -> None:
    tracking = steady()
    spike = on_line(8, 50.0)
    assert tracking.add(Point(spike.mono_ns, spike.needed_ns + 400_000)) is Verdict.HOLD
    assert tracking.held == 1
    assert tracking.points == 8
    assert tracking.add(on_line(9, 50.0)) is Verdict.FIT
    assert tracking.points == 9
    frequency = tracking.frequency_ppm()
    assert frequency is not None
    assert frequency == pytest.approx(50.0, abs=0.01)


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


def test_two_held_back_measurements_that_agree_restart_the_history_from_them() -> None:
    """A reference that really moved: the second sign of it is enough, and what is applied
    is where the two agree, not the old line."""
    tracking = steady()
    moved = [tracking.add(on_line(i, 50.0, start_ns=3_700_000)) for i in (8, 9)]
    assert moved == [Verdict.HOLD, Verdict.APPLY]
    assert tracking.points == 2
    assert tracking.line() is None, "a short history: acquiring again"
    for i in (10, 11):
        tracking.add(on_line(i, 50.0, start_ns=3_700_000))
    needed = tracking.needed_at(BASE + 12 * NS_PER_S)
    assert needed == pytest.approx(3_700_000 + 12 * 50_000, abs=5)


def test_held_back_measurements_agree_even_with_a_good_one_between_them() -> None:
    """The old filter forgot its suspects at every point it took, so that a real move with
    one honest-looking measurement amid it was refused again and again."""
    tracking = steady()
    assert tracking.add(on_line(8, 50.0, start_ns=3_700_000)) is Verdict.HOLD
    assert tracking.add(on_line(9, 50.0)) is Verdict.FIT
    assert tracking.add(on_line(10, 50.0, start_ns=3_700_000)) is Verdict.APPLY


def test_held_back_measurements_that_disagree_still_restart_the_history_after_a_few() -> None:
    """A history whose slope is wrong sees every new measurement further off, each in its
    own way: no two agree, yet the history is what is wrong.  It restarts within
    JUMP_AFTER rounds instead of holding the clock off for tens of seconds."""
    tracking = steady(slope_ppm=0.0)
    verdicts = [
        tracking.add(on_line(8 + i, 0.0, start_ns=3_000_000 + 300_000 * (i + 1) ** 2))
        for i in range(JUMP_AFTER)
    ]
    assert verdicts == [Verdict.HOLD] * (JUMP_AFTER - 1) + [Verdict.APPLY]


def test_single_spikes_now_and_then_never_restart_the_history() -> None:
    """Even alike ones: two held back agree only if they came within JUMP_WINDOW."""
    tracking = steady(count=12)
    for i in range(12, 40):
        point = on_line(i, 50.0)
        if i % 4 == 0:
            point = Point(point.mono_ns, point.needed_ns + 500_000)
            assert tracking.add(point) is Verdict.HOLD
        else:
            assert tracking.add(point) is Verdict.FIT
    assert tracking.points > 30


def test_a_history_that_no_longer_fits_drops_its_oldest_points() -> None:
    """The clock's rate changed (its host's crystal warmed up): the residuals of the old
    line no longer change sign at random, and the runs test cuts the history back, so that
    the new rate is learnt within rounds, not after a whole history of 64."""
    tracking = Tracking()
    for i in range(40):
        tracking.add(on_line(i, 0.0, delay_ns=50_000))
    for i in range(40, 52):
        slope_since = 3_000_000 + round((i - 40) * NS_PER_S * 20e-6)
        noise = (-1) ** i * 2_000
        tracking.add(Point(BASE + i * NS_PER_S, slope_since + noise, 50_000))
    assert tracking.points < 30
    frequency = tracking.frequency_ppm()
    assert frequency is not None
    assert frequency == pytest.approx(20.0, abs=3.0)


def test_the_history_keeps_its_newest_points() -> None:
    tracking = Tracking(max_points=4)
    for i in range(10):
        tracking.add(on_line(i, 0))
    assert tracking.points == 4
    with pytest.raises(ValueError, match="at least"):
        Tracking(max_points=MIN_FIT_POINTS - 1)


def test_restart_forgets_the_history_and_keeps_the_rate() -> None:
    tracking = steady(slope_ppm=30.0)
    tracking.restart(30.0)
    assert tracking.line() is None
    assert tracking.add(on_line(20, 0)) is Verdict.APPLY
    assert tracking.frequency_ppm() == pytest.approx(30.0)


def test_drift_over_long_rounds_is_no_move() -> None:
    """16 s rounds at 200 ppm: the need moves 3.2 ms a round, all of it drift."""
    tracking = Tracking()
    verdicts = [tracking.add(on_line(16.0 * i, 200.0)) for i in range(5)]
    assert verdicts == [Verdict.APPLY] * MIN_FIT_POINTS + [Verdict.FIT] * 2
    assert tracking.frequency_ppm() == pytest.approx(200.0, abs=0.01)


def steered(seconds: float, own_ppm: float, moves_ns: int, master_ppm: float) -> Point:
    """A measurement against a master that has moved its clock by `moves_ns` so far and
    runs at `master_ppm` (from the start): the clock needs its own drift plus all that."""
    mono = BASE + round(seconds * NS_PER_S)
    master_ns = moves_ns + round(seconds * NS_PER_S * master_ppm * 1e-6)
    own_ns = round(seconds * NS_PER_S * own_ppm * 1e-6)
    reference = Reference(master_ns, mono, master_ns, master_ppm)
    return Point(mono, own_ns + master_ns, 30_000, reference)


def test_a_masters_steering_reaches_the_clock_exactly_and_unfiltered() -> None:
    """The master moves its clock by noise every round and changes its rate: a clock that
    fits what it needs in total lags each move by its filter, while one that is told the
    steering fits only its own drift, a clean line, and follows every move at once."""
    moves = [0, 40_000, 15_000, 55_000, 20_000, 70_000, 35_000, 80_000, 45_000, 90_000]
    told, untold = Tracking(), Tracking()
    for second, moved in enumerate(moves * 2):
        master_ppm = 0.0 if second < 12 else 10.0
        point = steered(second, 25.0, moved + second * 1_000, master_ppm)
        told.add(point)
        untold.add(Point(point.mono_ns, point.needed_ns, point.delay_ns))
    later = BASE + 20 * NS_PER_S
    last = steered(19, 25.0, moves[-1] + 19 * 1_000, 10.0)
    assert last.reference is not None
    truth = 20 * 25_000 + last.reference.at(later)  # its own drift, the master's steering
    assert told.needed_at(later) == pytest.approx(truth, abs=100)
    assert abs((untold.needed_at(later) or 0) - truth) > 10_000
    assert told.frequency_ppm() == pytest.approx(35.0, abs=0.1), "its own 25 plus the master's 10"


def test_a_point_that_says_how_the_reference_is_steered_after_ones_that_did_not_restarts() -> None:
    tracking = steady()
    assert tracking.add(steered(8, 50.0, 1_000_000, 0.0)) is Verdict.APPLY
    assert tracking.points == 1
