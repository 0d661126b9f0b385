"""The history of one server's exchanges, intersected: per-direction minima, carried along
the frequency line, always a true bound."""

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.core.intervals import (
    MAX_SOURCES,
    Interval,
    IntervalHistory,
    interval_of,
    source_of,
)
from clocksync.core.measurement import Exchange
from clocksync.core.sample import Sample

NS_PER_S = 1_000_000_000
BASE = 7_000 * NS_PER_S
SERVER = ("bank", 1)


def exchange_at(mono: int, need_ns: float, there_ns: int, back_ns: int) -> Sample:
    """An exchange answered at `mono` by a server `need_ns` ahead of the client (whose
    adjustment is 0), the request taking `there_ns` and the answer `back_ns`."""
    t4 = mono
    t3 = round(t4 - back_ns + need_ns)
    t2 = t3 - 1_000
    t1 = round(t2 - there_ns - need_ns)
    return Sample(Exchange(t1, t2, t3, t4), peer="bank", epoch=1, arrived_mono=mono)


def test_an_exchange_confines_the_need_between_its_two_one_way_trips() -> None:
    sample = exchange_at(BASE, 5_000.0, there_ns=30_000, back_ns=70_000)
    interval = interval_of(sample)
    assert interval.mono_ns == BASE
    assert interval.low_ns <= 5_000 <= interval.high_ns
    assert interval.high_ns - interval.low_ns == pytest.approx(100_000, abs=500)


def test_the_quickest_way_there_and_back_of_different_exchanges_meet() -> None:
    """Neither exchange alone is within 10 µs; their intersection, the quick way there of
    one and the quick way back of the other, is."""
    history = IntervalHistory()
    slow_back = exchange_at(BASE, 0.0, there_ns=2_000, back_ns=400_000)
    slow_there = exchange_at(BASE + NS_PER_S, 0.0, there_ns=400_000, back_ns=2_000)
    for sample in (slow_back, slow_there):
        assert sample.error_bound_s > 100e-6
        history.add(SERVER, [interval_of(sample)])
    estimate = history.estimate(SERVER, BASE + NS_PER_S, slope=0.0, growth=0.0)
    assert estimate is not None
    assert abs(estimate.needed_ns) <= estimate.bound_ns < 5_000
    assert estimate.used == 2


@given(
    slope_ppm=st.floats(-200, 200),
    seed=st.integers(0, 10_000),
    count=st.integers(1, 200),
)
def test_the_bound_holds_for_any_delays_along_a_known_line(
    slope_ppm: float, seed: int, count: int
) -> None:
    rng = random.Random(seed)
    slope = slope_ppm * 1e-6
    history = IntervalHistory()
    for i in range(count):
        mono = BASE + i * 100_000_000
        need = 1e6 + slope * (mono - BASE)
        there, back = (round(rng.expovariate(1 / 2e6)) for _ in range(2))
        history.add(SERVER, [interval_of(exchange_at(mono, need, there, back))])
    now = BASE + count * 100_000_000
    estimate = history.estimate(SERVER, now, slope, growth=1e-6)
    assert estimate is not None
    assert abs(estimate.needed_ns - (1e6 + slope * (now - BASE))) <= estimate.bound_ns


def test_many_exchanges_on_a_jittery_path_beat_the_best_of_them() -> None:
    """Busy Wi-Fi (2 ms and an exponential 2 ms each way), 128 exchanges: the middle of
    their intersection is far nearer the truth than the quickest exchange's offset, over
    20 draws, and its bound no wider."""
    history_errors, best_errors = [], []
    for seed in range(20):
        rng = random.Random(seed)
        history = IntervalHistory()
        samples = []
        for i in range(128):
            there, back = (2_000_000 + round(rng.expovariate(1 / 2e6)) for _ in range(2))
            samples.append(exchange_at(BASE + i * NS_PER_S // 8, 0.0, there, back))
        history.add(SERVER, (interval_of(s) for s in samples))
        best = min(samples, key=lambda s: s.delay_s)
        estimate = history.estimate(SERVER, best.arrived_mono, slope=0.0, growth=0.0)
        assert estimate is not None
        assert abs(estimate.needed_ns) <= estimate.bound_ns <= best.error_bound_s * NS_PER_S
        history_errors.append(abs(estimate.needed_ns))
        best_errors.append(abs(best.offset_s * NS_PER_S))
    assert statistics.median(history_errors) < statistics.median(best_errors) / 3


def test_old_exchanges_widen_with_the_frequency_uncertainty() -> None:
    history = IntervalHistory()
    history.add(SERVER, [Interval(BASE, -1_000.0, 1_000.0)])
    ten_s_later = history.estimate(SERVER, BASE + 10 * NS_PER_S, slope=0.0, growth=1e-6)
    assert ten_s_later is not None
    assert ten_s_later.bound_ns == pytest.approx(11_000)


def test_intervals_are_carried_along_the_slope() -> None:
    history = IntervalHistory()
    history.add(SERVER, [Interval(BASE, -1_000.0, 1_000.0)])
    estimate = history.estimate(SERVER, BASE + NS_PER_S, slope=50e-6, growth=0.0)
    assert estimate is not None
    assert estimate.needed_ns == pytest.approx(50_000)


def test_an_empty_intersection_gives_no_estimate_until_started_anew() -> None:
    history = IntervalHistory()
    history.add(SERVER, [Interval(BASE, -1_000.0, 1_000.0)])
    history.add(SERVER, [Interval(BASE, 5_000.0, 7_000.0)])
    assert history.estimate(SERVER, BASE, slope=0.0, growth=0.0) is None
    history.add(SERVER, [Interval(BASE, 5_000.0, 7_000.0)], anew=True)
    estimate = history.estimate(SERVER, BASE, slope=0.0, growth=0.0)
    assert estimate is not None
    assert estimate.needed_ns == 6_000


def test_each_server_and_epoch_is_its_own_clock() -> None:
    first = exchange_at(BASE, 0.0, 1_000, 1_000)
    restarted = Sample(first.exchange, peer="bank", epoch=2, arrived_mono=BASE)
    other = Sample(first.exchange, peer="other", epoch=1, arrived_mono=BASE)
    assert len({source_of(first), source_of(restarted), source_of(other)}) == 3
    history = IntervalHistory()
    history.add(source_of(first), [Interval(BASE, -1_000.0, 1_000.0)])
    history.add(source_of(other), [Interval(BASE, 5_000.0, 7_000.0)])
    assert history.estimate(source_of(restarted), BASE, 0.0, 0.0) is None
    estimate = history.estimate(source_of(first), BASE, 0.0, 0.0)
    assert estimate is not None
    assert estimate.needed_ns == 0


def test_the_history_is_bounded_in_exchanges_and_servers() -> None:
    history = IntervalHistory(max_intervals=8)
    for server in range(MAX_SOURCES + 3):
        history.add(("s", server), [Interval(BASE + i, -1.0, 1.0) for i in range(20)])
    assert len(history) == 8 * MAX_SOURCES
    assert history.estimate(("s", 0), BASE, 0.0, 0.0) is None
    assert history.estimate(("s", MAX_SOURCES + 2), BASE, 0.0, 0.0) is not None
