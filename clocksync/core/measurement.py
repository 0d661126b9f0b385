"""Measurement: offset and delay from one four-timestamp exchange (RFC 5905, section 8).

The requester sends at t1 (its clock), the responder receives at t2 and answers at t3 (its
clock), the requester receives at t4.  The responder's time between t2 and t3 drops out, and
so does any constant difference between the two clocks.
"""

from dataclasses import dataclass

from clocksync.core.clock import NS_PER_S


@dataclass(frozen=True)
class Exchange:
    """One exchange, all four timestamps in nanoseconds since the Unix epoch."""

    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def offset_s(self) -> float:
        """The responder's clock minus the requester's, at the middle of the exchange."""
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) / 2 / NS_PER_S

    @property
    def delay_s(self) -> float:
        """Time on the wire both ways; never negative, even with wildly different rates."""
        return max(0, (self.t4 - self.t1) - (self.t3 - self.t2)) / NS_PER_S

    @property
    def rtt_s(self) -> float:
        """The round trip as the requester saw it, the responder's time included."""
        return (self.t4 - self.t1) / NS_PER_S
