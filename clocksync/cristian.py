"""Cristian's algorithm, done with NTP's four timestamps, and the error bound it guarantees.

A client sends at t1, the server reads its clock when the request arrived (t2) and as late
as it can before answering (t3), the client notes when the answer arrived (t4).  Causality
alone confines the server-minus-client offset: the request cannot arrive before it left and
the answer cannot arrive before it left, so the true offset lies in [t3 - t4, t2 - t1], whose
middle is the estimate and whose half-width is half the delay.  Nothing is assumed about how
the delay splits between the two directions.

Two small terms widen that: the clocks' rates differ from true time while the exchange is in
flight (each side states a bound in ppm), and readings are rounded to the nanosecond.  The
client keeps its t1 and t4 on its host's monotonic clock, anchored at t4, so its own slews
and simulated drift do not enter; the offset refers to the moment the answer arrived.

Every timestamp in an exchange may be late but never early (t1 is read before the send
system call, t2 and t4 are the kernel's receive timestamps, t3 is read before the reply is
sent), and a late timestamp only widens the interval: the bound still holds.
"""

from dataclasses import dataclass

from clocksync.clock import NS_PER_S
from clocksync.measurement import Exchange

PRECISION_NS = 100
"""Rounding of the four readings to whole nanoseconds, with a wide margin."""


@dataclass(frozen=True)
class TimeSample:
    """One Cristian exchange: t1 and t4 on the client's clock, t2 and t3 on the server's,
    and each side's bound on its clock's rate error in ppm."""

    exchange: Exchange
    server_rate_ppm: float
    client_rate_ppm: float

    @property
    def offset_s(self) -> float:
        """Server clock minus client clock when the answer arrived."""
        return self.exchange.offset_s

    @property
    def delay_s(self) -> float:
        """Time on the wire, both ways: the round trip less the server's own time."""
        return self.exchange.delay_s

    @property
    def rtt_s(self) -> float:
        """The round trip as the client saw it, server time included."""
        return (self.exchange.t4 - self.exchange.t1) / NS_PER_S

    @property
    def error_bound_s(self) -> float:
        """|offset_s - true offset| is at most this (see the module docstring).

        The rates can add at most their sum times the true round trip, which is longer
        than the client measured by at most the client's rate bound.
        """
        rates = (self.server_rate_ppm + self.client_rate_ppm) * 1e-6
        true_rtt_s = self.rtt_s / (1 - self.client_rate_ppm * 1e-6)
        return self.delay_s / 2 + rates * true_rtt_s + PRECISION_NS / NS_PER_S

    def implausible(self) -> str | None:
        """Why no honest server could have produced this sample, or None.

        A server that took longer to answer than the client waited, or whose clock ran
        backwards between t2 and t3, is broken or lying; its sample is dropped.
        """
        exchange = self.exchange
        held = exchange.t3 - exchange.t2
        if held < 0:
            return "the server answered before the request arrived"
        longest = (
            (exchange.t4 - exchange.t1)
            * (1 + self.server_rate_ppm * 1e-6)
            / (1 - self.client_rate_ppm * 1e-6)
        )
        if held > longest + PRECISION_NS:
            return "the server held the request longer than the round trip"
        return None


@dataclass(frozen=True)
class Estimate:
    """What a client learned: the best sample and how many were answered."""

    sample: TimeSample
    answered: int
    requested: int

    @property
    def client_time(self) -> int:
        """The client's clock when the best answer arrived (ns since the Unix epoch)."""
        return self.sample.exchange.t4

    @property
    def server_time(self) -> int:
        """The server's clock at that same moment, as estimated."""
        return self.client_time + round(self.sample.offset_s * NS_PER_S)


@dataclass(frozen=True)
class Outstanding:
    """A request awaiting its answer: the send time it carried (echoed back by the server),
    when it really left on the monotonic clock, and when to give up on it."""

    echo: int
    sent_mono: int
    deadline_mono: int


class PendingRequests:
    """The client's outstanding requests, by correlation data.

    An answer counts only if its correlation names an outstanding request, its echo is that
    request's send time, and it came before the request's deadline; it is then taken out, so
    a duplicate of it matches nothing.  A mismatched echo leaves the request outstanding,
    since the genuine answer may still come.
    """

    def __init__(self) -> None:
        self._waiting: dict[bytes, Outstanding] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, correlation: bytes, request: Outstanding) -> None:
        self._waiting[correlation] = request

    def take(self, correlation: bytes, echo: int, arrived_mono: int) -> Outstanding | str:
        """The request this answer is for, or why the answer matches none."""
        request = self._waiting.get(correlation)
        if request is None:
            return "it answers no outstanding request (stale, duplicate or foreign)"
        if request.echo != echo:
            return "its echoed send time is not the request's"
        del self._waiting[correlation]
        if arrived_mono > request.deadline_mono:
            return "it came after the request timed out"
        return request

    def expire(self, now_mono: int) -> int:
        """Give up on requests past their deadline; return how many."""
        late = [key for key, request in self._waiting.items() if request.deadline_mono < now_mono]
        for key in late:
            del self._waiting[key]
        return len(late)
