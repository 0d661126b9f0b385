"""Offset and delay from four timestamps."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.core.measurement import Exchange

MS = 1_000_000


def test_symmetric_path_gives_the_exact_offset() -> None:
    # Responder 7 ms ahead; 1 ms each way; 3 ms spent by the responder.
    exchange = Exchange(t1=100 * MS, t2=108 * MS, t3=111 * MS, t4=105 * MS)
    assert exchange.offset_s == pytest.approx(0.007)
    assert exchange.delay_s == pytest.approx(0.002)


def test_processing_time_drops_out() -> None:
    quick = Exchange(t1=0, t2=6 * MS, t3=6 * MS, t4=2 * MS)
    slow = Exchange(t1=0, t2=6 * MS, t3=506 * MS, t4=502 * MS)
    assert quick.offset_s == pytest.approx(slow.offset_s)
    assert quick.delay_s == pytest.approx(slow.delay_s)


def test_delay_is_never_negative() -> None:
    assert Exchange(t1=0, t2=10, t3=30, t4=5).delay_s == 0


@given(
    true_offset=st.integers(min_value=-(10**12), max_value=10**12),
    out=st.integers(min_value=0, max_value=10**9),
    back=st.integers(min_value=0, max_value=10**9),
    hold=st.integers(min_value=0, max_value=10**9),
)
def test_offset_error_is_within_half_the_delay(
    true_offset: int, out: int, back: int, hold: int
) -> None:
    t1 = 1_800_000_000 * 10**9
    t2 = t1 + out + true_offset
    t3 = t2 + hold
    t4 = t1 + out + hold + back
    exchange = Exchange(t1, t2, t3, t4)
    assert exchange.delay_s == pytest.approx((out + back) / 1e9)
    assert abs(exchange.offset_s - true_offset / 1e9) <= exchange.delay_s / 2 + 1e-9
