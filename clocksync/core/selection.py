"""Selection: the lowest-delay sample of several, the fault-tolerant average of Berkeley's
algorithm, and the corrections it implies.

Of several exchanges with one peer, the one with the lowest delay is the best evidence: its
offset is confined to the narrowest interval (ntpd's clock filter and BSD timed both keep the
minimum).

Rule (after the 4.4BSD timed rewrite): take the median of all offsets, the master's own 0
included; keep the offsets within a window of the median; average those.  The window is
`spread_factor` robust standard deviations (1.4826 × the median absolute deviation), never
narrower than `min_window_s`.  Since at least half of all offsets lie within one median
absolute deviation of the median, the average always rests on at least half of the clocks,
and one clock however far off cannot move it by more than the window.
"""

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clocksync.core.sample import Sample

MAD_TO_SIGMA = 1.4826
DEFAULT_MIN_WINDOW_S = 0.002
DEFAULT_SPREAD_FACTOR = 3.0


def lowest_delay(samples: Iterable[Sample]) -> Sample | None:
    """The sample with the lowest delay, or None when there is none."""
    return min(samples, key=lambda sample: sample.delay_s, default=None)


@dataclass(frozen=True)
class Agreement:
    """What Marzullo's intersection found: the point most sources' intervals share, the
    sources that agree on it (truechimers) and those that do not (falsetickers)."""

    point: float
    truechimers: frozenset[str]
    falsetickers: frozenset[str]


def marzullo(intervals: Mapping[str, tuple[float, float]]) -> Agreement | None:
    """The largest group of sources whose intervals [low, high] share a point, as NTP
    intersects its sources' offset ± bound; None when no more than half of them do (two
    servers that disagree cannot say which one lies)."""
    edges = sorted(
        (edge, kind)
        for low, high in intervals.values()
        for edge, kind in ((low, 0), (high, 1))  # at a tie an interval opens before one closes
    )
    best = count = 0
    point = 0.0
    for edge, kind in edges:
        count += 1 if kind == 0 else -1
        if count > best:
            best, point = count, edge
    agreeing = frozenset(name for name, (low, high) in intervals.items() if low <= point <= high)
    if not intervals or 2 * len(agreeing) <= len(intervals):
        return None
    return Agreement(point, agreeing, frozenset(intervals) - agreeing)


@dataclass(frozen=True)
class Selection:
    """The outcome of one round's averaging."""

    average_s: float
    median_s: float
    window_s: float
    included: frozenset[str]
    excluded: frozenset[str]


def fault_tolerant_average(
    offsets: Mapping[str, float],
    *,
    min_window_s: float = DEFAULT_MIN_WINDOW_S,
    spread_factor: float = DEFAULT_SPREAD_FACTOR,
) -> Selection:
    """Average the offsets that agree with the majority and name the ones left out.

    Raises ValueError when given no offset.
    """
    if not offsets:
        raise ValueError("no offsets to average")
    median = statistics.median(offsets.values())
    deviation = statistics.median(abs(offset - median) for offset in offsets.values())
    window = max(min_window_s, spread_factor * MAD_TO_SIGMA * deviation)
    included = frozenset(name for name, offset in offsets.items() if abs(offset - median) <= window)
    average = statistics.fmean(offsets[name] for name in included)
    return Selection(
        average_s=average,
        median_s=median,
        window_s=window,
        included=included,
        excluded=frozenset(offsets) - included,
    )


def corrections(offsets: Mapping[str, float], average_s: float) -> dict[str, float]:
    """What each clock must add to reach the average: a difference, never an absolute time."""
    return {name: average_s - offset for name, offset in offsets.items()}


def spread(offsets: Mapping[str, float]) -> float:
    """The distance between the fastest and the slowest clock."""
    return max(offsets.values()) - min(offsets.values()) if offsets else 0.0
