"""A sample: one exchange taken as evidence about a peer's clock.

It adds to the four timestamps what using them needs: whose clock was measured, which
request of a burst or round it answered, how fast each clock may have run off true time
while it was in flight (for the error bound), and the requester clock's total adjustment
when the answer arrived, and that instant on the host's monotonic clock (a correction
computed from the sample is relative to that).
"""

from dataclasses import dataclass

from clocksync.core import bounds
from clocksync.core.measurement import Exchange


@dataclass(frozen=True)
class Sample:
    """Offsets are the peer's (responder's) clock minus this (requester's) clock."""

    exchange: Exchange
    peer: str = ""
    seq: int = 0
    responder_ppm: float = 0.0
    requester_ppm: float = 0.0
    adjusted_ns: int = 0
    arrived_mono: int = 0
    epoch: int = 0
    """The responder's epoch: a server's clock is one clock only within one."""

    @property
    def offset_s(self) -> float:
        return self.exchange.offset_s

    @property
    def delay_s(self) -> float:
        """Time on the wire, both ways: the round trip less the responder's own time."""
        return self.exchange.delay_s

    @property
    def rtt_s(self) -> float:
        return self.exchange.rtt_s

    @property
    def error_bound_s(self) -> float:
        """|offset_s - true offset| is at most this (clocksync.core.bounds)."""
        return bounds.error_bound_s(self.exchange, self.responder_ppm, self.requester_ppm)

    def implausible(self) -> str | None:
        return bounds.implausible(self.exchange, self.responder_ppm, self.requester_ppm)
