"""The error bound holds whatever the delays and rates; implausible exchanges are named."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.core.bounds import PRECISION_NS
from clocksync.core.measurement import Exchange
from clocksync.core.sample import Sample

US = 1_000
START = 1_795_863_247_000_000_000


def exchange_at(
    *,
    true_offset: int,
    out: int,
    hold: int,
    back: int,
    server_rate: float = 0.0,
    client_rate: float = 0.0,
) -> tuple[Sample, float]:
    """An exchange with the given true offset (server minus client at t4), one-way delays and
    server hold time (true ns), each clock running at its rate; and the true offset at t4."""
    rtt = out + hold + back
    t4 = START
    t1 = t4 - round(rtt * (1 + client_rate))
    server_at_t4 = t4 + true_offset
    t3 = server_at_t4 - round(back * (1 + server_rate))
    t2 = t3 - round(hold * (1 + server_rate))
    sample = Sample(
        Exchange(t1, t2, t3, t4),
        responder_ppm=abs(server_rate) * 1e6,
        requester_ppm=abs(client_rate) * 1e6,
    )
    return sample, true_offset / 1e9


def test_symmetric_exchange_is_exact_and_bound_is_half_the_delay() -> None:
    sample, truth = exchange_at(true_offset=2_000_000_000, out=60 * US, hold=300 * US, back=60 * US)
    assert sample.offset_s == pytest.approx(truth, abs=1e-9)
    assert sample.delay_s == pytest.approx(120e-6)
    assert sample.rtt_s == pytest.approx(420e-6)
    assert sample.error_bound_s == pytest.approx(60e-6 + PRECISION_NS / 1e9)


def test_one_sided_delay_is_the_worst_case_and_still_inside() -> None:
    sample, truth = exchange_at(true_offset=-5_000_000_000, out=0, hold=10 * US, back=200 * US)
    assert abs(sample.offset_s - truth) == pytest.approx(100e-6, abs=1e-9)
    assert abs(sample.offset_s - truth) <= sample.error_bound_s


def test_rates_widen_the_bound() -> None:
    path = {"true_offset": 0, "out": 50 * US, "hold": 100 * US, "back": 50 * US}
    still, _ = exchange_at(**path)
    slewing, _ = exchange_at(**path, server_rate=0.083333)
    widening = (slewing.error_bound_s - slewing.delay_s / 2) - (
        still.error_bound_s - still.delay_s / 2
    )
    assert widening == pytest.approx(0.083333 * slewing.rtt_s, rel=1e-6)


@given(
    true_offset=st.integers(min_value=-(10**13), max_value=10**13),
    out=st.integers(min_value=0, max_value=10**8),
    hold=st.integers(min_value=0, max_value=10**8),
    back=st.integers(min_value=0, max_value=10**8),
    server_rate=st.floats(min_value=-0.1, max_value=0.1),
    client_rate=st.floats(min_value=-0.001, max_value=0.001),
)
def test_the_bound_always_holds(
    *, true_offset: int, out: int, hold: int, back: int, server_rate: float, client_rate: float
) -> None:
    sample, truth = exchange_at(
        true_offset=true_offset,
        out=out,
        hold=hold,
        back=back,
        server_rate=server_rate,
        client_rate=client_rate,
    )
    assert sample.implausible() is None
    assert abs(sample.offset_s - truth) <= sample.error_bound_s


def test_a_server_answering_before_the_request_arrived_is_implausible() -> None:
    sample = Sample(Exchange(0, 500 * US, 400 * US, 1000 * US), requester_ppm=500.0)
    assert "before the request arrived" in str(sample.implausible())


def test_a_server_holding_longer_than_the_round_trip_is_implausible() -> None:
    sample = Sample(Exchange(0, 0, 900 * US, 100 * US), responder_ppm=500.0, requester_ppm=500.0)
    assert "longer than the round trip" in str(sample.implausible())
