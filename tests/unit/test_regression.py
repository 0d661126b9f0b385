"""The weighted line through a history: exact slopes, weights by delay, the slope's error
from the residuals and from the points' own bounds, and the runs test."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.core.regression import RUNS_MIN_POINTS, Sample, fit, runs, too_few_runs, weights

NS_PER_S = 1_000_000_000
BASE = 7_000 * NS_PER_S


def on_line(
    seconds: float, slope_ppm: float, start_ns: float = 3e6, delay_ns: int | None = None
) -> Sample:
    return Sample(
        BASE + round(seconds * NS_PER_S), start_ns + seconds * NS_PER_S * slope_ppm * 1e-6, delay_ns
    )


@given(
    slope_ppm=st.floats(-5_000, 5_000),
    start_ns=st.integers(-10 * NS_PER_S, 10 * NS_PER_S),
    count=st.integers(2, 16),
)
def test_a_line_through_exact_points_recovers_its_slope_and_values(
    slope_ppm: float, start_ns: int, count: int
) -> None:
    samples = [on_line(16.0 * i, slope_ppm, start_ns) for i in range(count)]
    line = fit(samples)
    assert line.slope * 1e6 == pytest.approx(slope_ppm, abs=1e-3)
    later = BASE + 16 * count * NS_PER_S
    expected = start_ns + 16 * count * NS_PER_S * slope_ppm * 1e-6
    assert line.value_at(later) == pytest.approx(expected, abs=2)
    if count > 2:
        assert line.slope_error * 1e6 < 1e-3


def test_a_line_needs_two_instants() -> None:
    with pytest.raises(ValueError, match="two points"):
        fit([on_line(0, 0)])
    with pytest.raises(ValueError, match="one instant"):
        fit([on_line(0, 0), on_line(0, 0)])


def test_the_slope_error_shrinks_as_the_history_grows() -> None:
    noise = [30_000, -25_000, 10_000, -40_000, 5_000, 35_000, -15_000, 20_000]
    samples = [
        Sample(s.mono_ns, s.value_ns + noise[i % len(noise)])
        for i, s in enumerate(on_line(float(i), 80.0) for i in range(16))
    ]
    short, long = fit(samples[:4]), fit(samples)
    assert long.slope_error < short.slope_error / 4
    assert long.slope * 1e6 == pytest.approx(80.0, abs=3 * long.slope_error * 1e6)
    assert long.residual_ns == pytest.approx(26_000, rel=0.3)


def test_an_exchange_that_took_longer_weighs_less() -> None:
    quick = [on_line(i, 0, delay_ns=200_000) for i in range(8)]
    held_up = Sample(BASE + 8 * NS_PER_S, 3e6 + 900_000, 2_000_000)  # off by 900 µs
    weighed = fit([*quick, held_up])
    unweighed = fit([Sample(s.mono_ns, s.value_ns) for s in (*quick, held_up)])
    later = BASE + 9 * NS_PER_S
    assert abs(weighed.value_at(later) - 3e6) < 10_000
    assert abs(unweighed.value_at(later) - 3e6) > 200_000


def test_three_points_that_happen_to_agree_do_not_know_a_slope_their_bounds_do_not() -> None:
    """Exchanges within ±5.5 ms, a second apart, lying on a line by chance: the residuals
    say the slope is exact, the points' own bounds say it is known within a millisecond a
    second.  The line claims the larger error."""
    samples = [on_line(i, -972.0, delay_ns=11_000_000) for i in range(3)]
    line = fit(samples)
    assert line.slope * 1e6 == pytest.approx(-972.0, abs=0.01)
    assert line.slope_error * 1e6 > 1_000


def test_where_most_exchanges_waited_the_quick_few_carry_the_line() -> None:
    """A broker holding three replies of four for an ACK: 11 ms round trips, each offset
    off by 5.5 ms one way; the quick quarter are right.  With a floor set by the median
    delay they would have counted barely more than the slow ones."""
    samples = []
    for i in range(16):
        if i % 4 == 0:
            samples.append(on_line(i, 0, delay_ns=40_000))
        else:
            samples.append(Sample(BASE + i * NS_PER_S, 3e6 - 5_500_000, 11_000_000))
    line = fit(samples)
    assert abs(line.value_at(BASE + 16 * NS_PER_S) - 3e6) < 20_000
    ws = weights(samples)
    assert ws[0] > 10_000 * ws[1]


def test_a_jittery_path_floors_the_weights_by_its_quickest_quarter() -> None:
    delays = [100_000, 150_000, 180_000, 200_000, 220_000, 240_000, 260_000, 300_000]
    ws = weights([Sample(BASE + i, 0.0, d) for i, d in enumerate(delays)])
    assert ws[0] < 20 * ws[1], "the quickest exchange does not stand alone"


def test_runs_count_changes_of_sign() -> None:
    assert runs([1, 2, -1, -3, 4]) == 3
    assert runs([1, 0, 1, -1]) == 2
    assert runs([]) == 0
    assert runs([0.0, 0.0]) == 1


def test_the_runs_test_passes_noise_and_fails_a_curve() -> None:
    noise = [(-1) ** (i * 7 % 3) * (1_000 + i) for i in range(40)]
    assert not too_few_runs(noise)
    curve = [float((i - 20) ** 2 - 130) for i in range(40)]
    assert too_few_runs(curve)
    assert not too_few_runs(curve[: RUNS_MIN_POINTS - 1]), "too short to judge"
    assert not too_few_runs([0.0] * 40), "rounding has no sign"
