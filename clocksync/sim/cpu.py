"""A busy CPU as a process sees it: now and then the process is not scheduled for a while.

On a quiet host a process woken by a message or a timer runs within tens of microseconds;
with other programs competing for the cores it sometimes waits milliseconds (on a 2-core
machine with one busy loop per core, 0.4 % of 5 ms sleeps overslept by more than 1 ms, by
up to 4 ms).  `BusyCpu` describes such a host: stalls begin at random instants (a Poisson
process) and last a heavy-tailed time.  A `Stalls` timeline, one per process, says when an
event due at a given instant can really run: at once, or when the stall it falls in ends.
"""

import bisect
import random
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class BusyCpu:
    """Stalls `rate_hz` times a second on average, each at least `min_s` long, heavy-tailed
    (Pareto, tail index `shape`), at most `cap_s`."""

    rate_hz: float
    min_s: float
    shape: float = 1.5
    cap_s: float = 0.02

    def __post_init__(self) -> None:
        if not (self.rate_hz > 0 and 0 < self.min_s <= self.cap_s and self.shape > 0):
            raise ValueError("a busy CPU needs a positive rate and 0 < min_s <= cap_s")


LOADED = BusyCpu(rate_hz=2.0, min_s=0.5e-3, shape=1.2, cap_s=0.02)
"""A host with one competing busy process per core, as measured on the 2-core machine:
about two stalls a second, most near a millisecond, a few of several milliseconds."""


class Stalls:
    """One process's stalls on a `BusyCpu`, drawn lazily from its own seeded generator so
    that a run depends only on its seed."""

    def __init__(self, cpu: BusyCpu, seed: int) -> None:
        self.cpu = cpu
        self._rng = random.Random(seed)
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._drawn_until = 0

    def released(self, at_ns: int) -> int:
        """When something due at `at_ns` runs: then, or at the end of the stall it falls in."""
        self._draw_until(at_ns)
        index = bisect.bisect_right(self._starts, at_ns) - 1
        if index >= 0 and at_ns < self._ends[index]:
            return self._ends[index]
        return at_ns

    def _draw_until(self, at_ns: int) -> None:
        cpu, rng = self.cpu, self._rng
        while self._drawn_until <= at_ns:
            start = self._drawn_until + round(rng.expovariate(cpu.rate_hz) * NS_PER_S)
            length = min(cpu.min_s * rng.paretovariate(cpu.shape), cpu.cap_s)
            end = start + round(length * NS_PER_S)
            self._starts.append(start)
            self._ends.append(end)
            self._drawn_until = end
        # Events are asked about in time order, give or take a round: older stalls go.
        keep_from = bisect.bisect_left(self._ends, at_ns - 60 * NS_PER_S)
        if keep_from > 1024:
            del self._starts[:keep_from]
            del self._ends[:keep_from]
