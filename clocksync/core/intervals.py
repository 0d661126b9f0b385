"""The recent exchanges with one server, intersected: per-direction minimum delays over the
history (as BSD timed kept them), in the form of intervals.

One exchange confines what the clock needed in total (its adjustment plus the server's
offset from it, see clocksync.core.tracking) to an interval: its upper end is set by the way
there (t2 - t1: the request cannot arrive before it left), its lower end by the way back
(t3 - t4), widened by the rate terms of its bound (clocksync.core.bounds).  With the clock's
frequency error known, every earlier interval can be carried forward to now along the
frequency line, widened by how far that line may be off since (the same growth that widens a
reported bound between corrections).  What the clock needs now lies in all of them, so in
their intersection: its upper end is the quickest way there seen, its lower end the
quickest way back, each from whichever exchange had it.  On a jittery path the two
quickest one-way trips of many exchanges are far quicker together than the quickest round
trip of any one exchange, so the middle is nearer the truth and the half-width, still a
true bound, narrower.

An empty intersection means an interval did not hold (the server's clock moved, or the
frequency line is wrong): the history then starts over from the newest exchanges.  So does
a change of server or of its epoch: each server's clock is its own.
"""

from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from clocksync.core.clock import NS_PER_S
from clocksync.core.sample import Sample

MAX_INTERVALS = 128
"""Exchanges kept per server: sixteen bursts of eight, sixteen seconds at one a second."""
MAX_SOURCES = 4
"""Servers whose histories are kept at once (they share the site's requests)."""


@dataclass(frozen=True)
class Interval:
    """What the clock needed in total at monotonic instant `mono_ns` lies within
    [`low_ns`, `high_ns`]."""

    mono_ns: int
    low_ns: float
    high_ns: float


def interval_of(sample: Sample) -> Interval:
    """The interval one exchange confines the clock's total need to, at its answer's
    arrival: the sample's offset ± its error bound, plus the adjustment then."""
    middle = sample.adjusted_ns + sample.offset_s * NS_PER_S
    half = sample.error_bound_s * NS_PER_S
    return Interval(sample.arrived_mono, middle - half, middle + half)


@dataclass(frozen=True)
class Estimate:
    """What the clock needs in total at the instant asked about, within ± `bound_ns`, from
    `used` exchanges."""

    needed_ns: float
    bound_ns: float
    used: int


def source_of(sample: Sample) -> Hashable:
    """Whose clock a sample measured: a server's clock is one only within one epoch."""
    return (sample.peer, sample.epoch)


class IntervalHistory:
    """The intervals of the latest exchanges, per server."""

    def __init__(self, max_intervals: int = MAX_INTERVALS) -> None:
        self.max_intervals = max_intervals
        self._sources: OrderedDict[Hashable, deque[Interval]] = OrderedDict()

    def clear(self) -> None:
        self._sources.clear()

    def __len__(self) -> int:
        return sum(len(intervals) for intervals in self._sources.values())

    def add(self, source: Hashable, intervals: Iterable[Interval], *, anew: bool = False) -> None:
        """Keep `intervals` from `source`; `anew`: in place of what `source` gave before."""
        kept = self._sources.pop(source, None)
        if kept is None or anew:
            kept = deque(maxlen=self.max_intervals)
        kept.extend(intervals)
        self._sources[source] = kept
        while len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)

    def estimate(
        self, source: Hashable, mono_ns: int, slope: float, growth: float
    ) -> Estimate | None:
        """The intersection of `source`'s intervals carried to `mono_ns` along `slope` (the
        need's rate, ns per ns), each widened by `growth` (ns per ns) times its age; None
        when there is none, or when it is empty (the caller starts `source` anew)."""
        kept = self._sources.get(source)
        if not kept:
            return None
        low, high = -float("inf"), float("inf")
        for interval in kept:
            age = mono_ns - interval.mono_ns
            carried = slope * age
            widened = growth * abs(age)
            low = max(low, interval.low_ns + carried - widened)
            high = min(high, interval.high_ns + carried + widened)
        if low > high:
            return None
        return Estimate((low + high) / 2, (high - low) / 2, len(kept))
