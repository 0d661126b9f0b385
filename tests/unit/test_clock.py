"""The software clock: free running, slewing, stepping, and never running backwards."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync.core.clock import MAX_READING_NS, NS_PER_S, Applied, Discipline, SoftwareClock
from tests.unit.fakes import START_WALL, FakeTime, make_clock


def test_starts_at_host_time_plus_offset_and_runs_at_the_drifted_rate() -> None:
    fake = FakeTime()
    clock = make_clock(fake, offset_s=2.5, drift_ppm=100)
    assert clock.now_ns() == START_WALL + 2_500_000_000
    fake.advance(10 * NS_PER_S)
    assert clock.now_ns() == START_WALL + 2_500_000_000 + 10 * NS_PER_S + 1_000_000


def test_host_offset_is_the_truth_signal() -> None:
    fake = FakeTime()
    clock = make_clock(fake, offset_s=-1.25, drift_ppm=-50)
    fake.advance(4 * NS_PER_S)
    offset, host = clock.host_offset_ns()
    assert host == fake.wall
    assert offset == -1_250_000_000 - 200_000


def test_small_correction_is_slewed_at_the_maximum_rate() -> None:
    fake = FakeTime()
    clock = make_clock(fake, max_slew_ppm=10_000)
    assert clock.correct(5_000_000) is Applied.SLEW
    assert clock.slew_remaining_ns() == 5_000_000
    fake.advance(NS_PER_S // 10)
    assert clock.now_ns() - fake.wall == 1_000_000
    assert clock.slew_remaining_ns() == 4_000_000
    end = clock.slew_end_mono()
    assert end is not None
    fake.mono = end
    fake.wall = START_WALL + (end - 5 * NS_PER_S)
    assert clock.now_ns() - fake.wall == 5_000_000
    assert clock.slew_end_mono() is None
    fake.advance(NS_PER_S)
    assert clock.now_ns() - fake.wall == 5_000_000


def test_negative_slew_slows_the_clock_but_never_reverses_it() -> None:
    fake = FakeTime()
    clock = make_clock(fake, max_slew_ppm=500_000)
    clock.correct(-50_000_000)
    before = clock.now_ns()
    fake.advance(NS_PER_S // 100)
    after = clock.now_ns()
    assert after - before == NS_PER_S // 200


def test_forward_step_above_threshold_is_allowed_at_any_time() -> None:
    fake = FakeTime()
    clock = make_clock(fake, step_threshold_s=0.1, first_updates=0, max_change_s=10)
    assert clock.correct(3 * NS_PER_S) is Applied.STEP
    assert clock.now_ns() - fake.wall == 3 * NS_PER_S
    assert clock.adjusted_ns() == 3 * NS_PER_S


def test_backward_step_only_within_the_first_updates() -> None:
    fake = FakeTime()
    clock = make_clock(fake, step_threshold_s=0.1, first_updates=2)
    assert clock.correct(-NS_PER_S) is Applied.STEP
    assert clock.correct(1_000) is Applied.SLEW
    assert clock.correct(-NS_PER_S) is Applied.SLEW
    assert clock.slew_remaining_ns() == -NS_PER_S


def test_in_service_a_change_beyond_the_maximum_is_refused_both_ways() -> None:
    fake = FakeTime()
    clock = make_clock(fake, first_updates=1, max_change_s=0.5)
    assert clock.correct(-3 * NS_PER_S) is Applied.STEP, "the first update may be anything"
    for delta in (NS_PER_S, -NS_PER_S, 10**18):
        assert clock.correct(delta) is Applied.REFUSED
    assert "maximum change of 0.5 s" in str(clock.refusal(NS_PER_S))
    assert (clock.updates, clock.refused) == (1, 3)
    assert clock.now_ns() - fake.wall == -3 * NS_PER_S
    assert clock.correct(NS_PER_S // 2) is Applied.STEP


def test_no_correction_takes_the_clock_outside_1970_to_9999() -> None:
    fake = FakeTime()
    clock = make_clock(fake, first_updates=10)
    assert clock.correct(-fake.wall - 1) is Applied.REFUSED
    assert clock.correct(MAX_READING_NS) is Applied.REFUSED
    assert "outside 1970 to 9999" in str(clock.refusal(MAX_READING_NS))
    assert clock.now_ns() == fake.wall
    with pytest.raises(ValueError, match="1970 to 9999"):
        make_clock(fake, offset_s=300e9)


def test_a_new_correction_supersedes_what_is_left_of_a_slew() -> None:
    fake = FakeTime()
    clock = make_clock(fake, max_slew_ppm=1_000)
    clock.correct(1_000_000)
    fake.advance(NS_PER_S // 2)
    assert clock.adjusted_ns() == 500_000
    clock.correct(-200_000)
    assert clock.slew_remaining_ns() == -200_000
    fake.advance(NS_PER_S)
    assert clock.adjusted_ns() == 300_000


def test_reading_at_a_moment_before_a_correction_uses_the_old_rate() -> None:
    fake = FakeTime()
    clock = make_clock(fake)
    earlier = fake.mono
    reading_then = clock.now_ns()
    fake.advance(1_000)
    clock.correct(2 * NS_PER_S)
    assert clock.reading_at(earlier) == reading_then


@pytest.mark.parametrize(
    "settings_",
    [
        {"max_slew_ppm": 0},
        {"max_slew_ppm": 600_000},
        {"step_threshold_s": float("nan")},
        {"step_threshold_s": 0},
        {"first_updates": -1},
        {"max_change_s": 0},
        {"max_change_s": float("inf")},
    ],
)
def test_discipline_rejects_nonsense(settings_: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Discipline(**settings_)  # type: ignore[arg-type]


@pytest.mark.parametrize(("offset", "drift"), [(float("inf"), 0.0), (0.0, 200_000.0)])
def test_clock_rejects_impossible_settings(offset: float, drift: float) -> None:
    with pytest.raises(ValueError, match="must"):
        SoftwareClock(offset_s=offset, drift_ppm=drift)


corrections = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * NS_PER_S),
        st.integers(min_value=-20 * NS_PER_S, max_value=20 * NS_PER_S),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    corrections,
    st.floats(min_value=-100_000, max_value=100_000),
    st.floats(min_value=1, max_value=500_000),
    st.integers(min_value=0, max_value=5),
)
def test_readings_never_decrease_once_backward_steps_are_spent(
    sequence: list[tuple[int, int]], drift: float, slew_ppm: float, limit: int
) -> None:
    fake = FakeTime()
    clock = make_clock(fake, drift_ppm=drift, max_slew_ppm=slew_ppm, first_updates=limit)
    for _ in range(limit):
        clock.correct(0)
    last = clock.now_ns()
    for gap, delta in sequence:
        for _ in range(4):
            fake.advance(gap // 4 + 1)
            reading = clock.now_ns()
            assert reading >= last
            last = reading
        clock.correct(delta)
        reading = clock.now_ns()
        assert reading >= last
        last = reading


@settings(max_examples=300, deadline=None)
@given(corrections, st.floats(min_value=1, max_value=500_000))
def test_slewing_changes_the_clock_no_faster_than_the_maximum_rate(
    sequence: list[tuple[int, int]], slew_ppm: float
) -> None:
    fake = FakeTime()
    clock = make_clock(fake, max_slew_ppm=slew_ppm, step_threshold_s=1e6)
    for gap, delta in sequence:
        clock.correct(delta)
        before = clock.now_ns() - fake.wall
        fake.advance(gap)
        after = clock.now_ns() - fake.wall
        assert abs(after - before) <= gap * slew_ppm * 1e-6 + 2


@settings(max_examples=200, deadline=None)
@given(corrections)
def test_every_correction_is_applied_in_full_eventually(sequence: list[tuple[int, int]]) -> None:
    fake = FakeTime()
    clock = make_clock(fake, step_threshold_s=1e6, max_change_s=1e6)
    for gap, delta in sequence:
        before = clock.adjusted_ns()
        clock.correct(delta)
        end = clock.slew_end_mono()
        fake.advance((end - fake.mono) if end is not None else 0)
        assert clock.adjusted_ns() - before == pytest.approx(delta, abs=2)
        assert clock.now_ns() - fake.wall == clock.adjusted_ns()
        fake.advance(gap)


def test_knows_whether_it_stepped_since_a_moment() -> None:
    fake = FakeTime()
    clock = make_clock(fake, step_threshold_s=0.1)
    before = fake.mono
    clock.correct(1_000)
    assert not clock.stepped_since(before)
    fake.advance(10)
    clock.correct(NS_PER_S)
    assert clock.stepped_since(before)
    fake.advance(10)
    assert not clock.stepped_since(fake.mono)


def test_truth_signal_keeps_the_narrowest_bracket() -> None:
    # The wall clock runs exactly with the monotonic one.  In the first bracket the process
    # is preempted for 5 ms after reading the wall clock; the others take 100 ns.
    second = NS_PER_S
    mono_reads = [10 * second, 11 * second, 11 * second + 5_000_000]
    wall_reads = [10 * second, 11 * second]
    for at in (12 * second, 13 * second, 14 * second, 15 * second):
        mono_reads += [at, at + 100]
        wall_reads += [at + 50]
    monos, walls = iter(mono_reads), iter(wall_reads)
    clock = SoftwareClock(
        offset_s=1.0,
        monotonic_ns=lambda: next(monos),
        wall_ns=lambda: next(walls) - 10 * second + START_WALL,
    )
    offset, host = clock.host_offset_ns()
    assert offset == second
    assert host == START_WALL + 2 * second + 50


def test_a_correction_measured_earlier_subtracts_what_was_slewed_since() -> None:
    fake = FakeTime()
    clock = make_clock(fake)
    clock.correct(1_000_000)  # slewing forwards
    then = clock.adjusted_ns()
    fake.advance(4_000_000)  # 4 ms at 83,333 ppm: about 333 µs slewed since
    slewed = clock.adjusted_ns() - then
    assert slewed > 300_000
    how, remaining = clock.correct_measured(500_000, then)
    assert how is Applied.SLEW
    assert remaining == 500_000 - slewed


def test_what_was_slewed_since_leaves_out_the_frequency_correction() -> None:
    """A correction measured earlier is relative to a clock that has kept running at its
    frequency correction since: only its slews and steps are already applied."""
    fake = FakeTime()
    clock = make_clock(fake)
    clock.correct(0, frequency_ppm=50.0)
    mono, then = fake.mono, clock.adjusted_ns()
    clock.correct(200_000)
    fake.advance(NS_PER_S)
    assert clock.adjusted_ns() - then == 200_000 + 50_000
    assert clock.slewed_since(then, mono) == 200_000


def test_a_frequency_correction_changes_the_rate_and_counts_as_adjustment() -> None:
    fake = FakeTime()
    clock = make_clock(fake, drift_ppm=-40)
    assert clock.correct(0, frequency_ppm=40.0) is Applied.SLEW
    assert clock.frequency_ppm == pytest.approx(40.0)
    fake.advance(10 * NS_PER_S)
    assert abs(clock.now_ns() - fake.wall) <= 1
    assert clock.adjusted_ns() == 400_000
    assert clock.rate_error_ppm(may_slew=False) == pytest.approx(500.0)
    clock.correct(1_000)
    assert clock.frequency_ppm == pytest.approx(40.0), "kept unless changed"


def test_the_frequency_correction_is_bounded_and_must_be_finite() -> None:
    fake = FakeTime()
    clock = make_clock(fake, max_frequency_ppm=1_000)
    clock.correct(0, frequency_ppm=1e6)
    assert clock.frequency_ppm == pytest.approx(1_000)
    with pytest.raises(ValueError, match="finite"):
        clock.correct(0, frequency_ppm=float("nan"))
    with pytest.raises(ValueError, match="max_frequency_ppm"):
        Discipline(max_frequency_ppm=0)


def test_a_refused_correction_leaves_the_frequency_alone() -> None:
    fake = FakeTime()
    clock = make_clock(fake, first_updates=0)
    assert clock.correct(5 * NS_PER_S, frequency_ppm=300.0) is Applied.REFUSED
    assert clock.frequency_ppm == 0.0


@settings(max_examples=200)
@given(
    frequency=st.floats(-5_000, 5_000),
    slew=st.integers(-NS_PER_S // 2, NS_PER_S // 2),
    steps=st.lists(st.integers(1, 10**9), min_size=1, max_size=20),
)
def test_with_any_frequency_and_slew_the_clock_never_runs_backwards(
    frequency: float, slew: int, steps: list[int]
) -> None:
    fake = FakeTime()
    clock = make_clock(fake, drift_ppm=-100, first_updates=0)
    clock.correct(slew, frequency_ppm=frequency)
    before = clock.now_ns()
    for step in steps:
        fake.advance(step)
        now = clock.now_ns()
        assert now >= before
        before = now
