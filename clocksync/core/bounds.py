"""How far an exchange's offset can be from the truth, whatever the delays were.

A requester sends at t1, the responder reads its clock when the request arrived (t2) and as
late as it can before answering (t3), the requester notes when the answer arrived (t4).
Causality alone confines the responder-minus-requester offset: the request cannot arrive
before it left and the answer cannot arrive before it left, so the true offset lies in
[t3 - t4, t2 - t1], whose middle is the estimate and whose half-width is half the delay.
Nothing is assumed about how the delay splits between the two directions.

Two small terms widen that: the clocks' rates differ from true time while the exchange is in
flight (each side states a bound in ppm), and readings are rounded to the nanosecond.  A
Cristian client keeps its t1 and t4 on its host's monotonic clock, anchored at t4, so its own
slews and simulated drift do not enter; the offset refers to the moment the answer arrived.

Every timestamp in an exchange may be late but never early (t1 is read before the send
system call, t2 and t4 are the kernel's receive timestamps, t3 is read before the reply is
sent), and a late timestamp only widens the interval: the bound still holds.
"""

from clocksync.core.clock import NS_PER_S
from clocksync.core.measurement import Exchange

PRECISION_NS = 100
"""Rounding of the four readings to whole nanoseconds, with a wide margin."""


def error_bound_s(exchange: Exchange, responder_ppm: float, requester_ppm: float) -> float:
    """|offset_s - true offset| is at most this (see the module docstring).

    The rates can add at most their sum times the true round trip, which is longer than
    the requester measured by at most the requester's rate bound.
    """
    rates = (responder_ppm + requester_ppm) * 1e-6
    true_rtt_s = exchange.rtt_s / (1 - requester_ppm * 1e-6)
    return exchange.delay_s / 2 + rates * true_rtt_s + PRECISION_NS / NS_PER_S


def implausible(exchange: Exchange, responder_ppm: float, requester_ppm: float) -> str | None:
    """Why no honest responder could have produced this exchange, or None.

    A responder that took longer to answer than the requester waited, or whose clock ran
    backwards between t2 and t3, is broken or lying; its exchange is dropped.
    """
    held = exchange.t3 - exchange.t2
    if held < 0:
        return "the server answered before the request arrived"
    longest = (exchange.t4 - exchange.t1) * (1 + responder_ppm * 1e-6) / (1 - requester_ppm * 1e-6)
    if held > longest + PRECISION_NS:
        return "the server held the request longer than the round trip"
    return None
