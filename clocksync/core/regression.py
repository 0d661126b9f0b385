"""The weighted line through a clock's history, and the runs test that says when the
history has outlived its line (chrony's regress.c, in a few functions).

A point is what a clock needed at an instant (clocksync.core.tracking), measured by an
exchange whose round trip confines it to within half the delay: a bound that holds
whatever the delays were (clocksync.core.bounds).  The line is fitted by weighted least
squares, a point weighing less the more its delay exceeded the lowest seen.  Its slope's
standard error is the larger of two: the one the residuals show (chrony's), and the one
the points' own bounds allow.  The second keeps three points that happen to lie on a line
from claiming a slope they cannot know: three exchanges each within ±5 ms, one second
apart, do not know a frequency within 1000 ppm, however well they agree.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

SIGMA_FLOOR_NS = 5_000
"""The least spread taken for a measurement of the lowest delay seen; one whose round trip
took longer may be off by up to half the excess as well, and weighs accordingly less."""
RUNS_SIGMAS = 2.0
RUNS_MIN_POINTS = 8
RUNS_FLOOR_NS = 100
"""The runs test judges the residuals larger than RUNS_FLOOR_NS (smaller ones are rounding,
and have no sign), when there are at least RUNS_MIN_POINTS of them (chrony's table starts
there too), failing a history whose residuals change sign more than RUNS_SIGMAS standard
deviations less often than a random sequence would."""


@dataclass(frozen=True)
class Sample:
    """A point of a history: `value_ns` at monotonic instant `mono_ns`, from an exchange
    whose round trip took `delay_ns`, where known."""

    mono_ns: int
    value_ns: float
    delay_ns: int | None = None


@dataclass(frozen=True)
class Fit:
    """The line through a history: `value_at(mono)`, its slope (dimensionless, ns per ns)
    with its standard error, and the weighted scatter of the points about it."""

    origin_mono: int
    origin_value: float
    intercept_ns: float
    slope: float
    slope_error: float
    residual_ns: float
    points: int

    def value_at(self, mono: int) -> float:
        return self.origin_value + self.intercept_ns + self.slope * (mono - self.origin_mono)


def weights(samples: Sequence[Sample]) -> list[float]:
    """1/σ² per sample: σ is half the sample's delay above the lowest, plus a floor.

    The floor is SIGMA_FLOOR_NS, or a quarter of the spread between the lowest delay and
    the quickest quarter's if that is more: on a jittery path even the quickest exchange
    seen may have waited, and weights that trusted it alone would make the line hinge on
    one point.  The quickest quarter, not the median: where most exchanges wait (a broker
    holding every other reply for an ACK), the few quick ones are the evidence, and a
    floor set by the slow majority would let them count little more than the rest.
    """
    delays = sorted(s.delay_ns for s in samples if s.delay_ns is not None)
    lowest = delays[0] if delays else 0
    spread = delays[(len(delays) - 1) // 4] - lowest if delays else 0
    floor = max(SIGMA_FLOOR_NS, spread / 4)
    sigmas = [floor + (0 if s.delay_ns is None else (s.delay_ns - lowest) / 2) for s in samples]
    return [1.0 / (sigma * sigma) for sigma in sigmas]


def fit(samples: Sequence[Sample]) -> Fit:
    """Weighted least squares through at least two samples, about the latest one (where the
    line is used), in floats relative to it so that nanosecond counts keep their precision."""
    if len(samples) < 2:
        raise ValueError("a line needs two points")
    origin = samples[-1]
    xs = [float(s.mono_ns - origin.mono_ns) for s in samples]
    ys = [s.value_ns - origin.value_ns for s in samples]
    ws = weights(samples)
    total = sum(ws)
    x_mean = sum(w * x for w, x in zip(ws, xs, strict=True)) / total
    y_mean = sum(w * y for w, y in zip(ws, ys, strict=True)) / total
    sxx = sum(w * (x - x_mean) ** 2 for w, x in zip(ws, xs, strict=True))
    if sxx <= 0:
        raise ValueError("the points share one instant")
    sxy = sum(w * (x - x_mean) * (y - y_mean) for w, x, y in zip(ws, xs, ys, strict=True))
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    squares = sum(w * (y - intercept - slope * x) ** 2 for w, x, y in zip(ws, xs, ys, strict=True))
    dof = len(samples) - 2
    from_residuals = math.sqrt(squares / dof / sxx) if dof > 0 else math.inf
    return Fit(
        origin_mono=origin.mono_ns,
        origin_value=origin.value_ns,
        intercept_ns=intercept,
        slope=slope,
        slope_error=max(from_residuals, _slope_error_from_bounds(samples, xs, ws, x_mean, sxx)),
        residual_ns=math.sqrt(squares / total * len(samples) / dof) if dof > 0 else math.inf,
        points=len(samples),
    )


def _slope_error_from_bounds(
    samples: Sequence[Sample], xs: list[float], ws: list[float], x_mean: float, sxx: float
) -> float:
    """The slope's standard error if each sample were anywhere within half its delay
    (uniformly: a variance of a third of that squared); 0 where no delay is known."""
    variance = sum(
        (w * (x - x_mean)) ** 2 * (s.delay_ns / 2) ** 2 / 3
        for s, w, x in zip(samples, ws, xs, strict=True)
        if s.delay_ns is not None
    )
    return math.sqrt(variance) / sxx


def runs(residuals: Sequence[float]) -> int:
    """Runs of one sign among `residuals` (a zero continues the run it is in)."""
    count, sign = 0, 0
    for residual in residuals:
        current = (residual > 0) - (residual < 0)
        if current and current != sign:
            count, sign = count + 1, current
    return max(count, 1 if residuals else 0)


def too_few_runs(residuals: Sequence[float]) -> bool:
    """Whether the residuals change sign too seldom to be noise about a right line (the
    Wald-Wolfowitz runs test, as chrony applies it): the line no longer describes the
    oldest of them."""
    residuals = [r for r in residuals if abs(r) > RUNS_FLOOR_NS]
    n = len(residuals)
    if n < RUNS_MIN_POINTS:
        return False
    half = n / 2
    expected = half + 1
    deviation = math.sqrt(half * (half - 1) / (n - 1))
    return runs(residuals) < expected - RUNS_SIGMAS * deviation
