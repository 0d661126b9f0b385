"""How a clock follows its reference over time: frequency and filtered phase (chrony's
sourcestats and tracking).

Each correction a participant receives says how far its clock was from the reference when it
was measured.  Added to the clock's total adjustment at that instant, it gives what the clock
*needed* in total by then.  For a clock whose frequency error is steady, those needs lie on a
straight line against the host's monotonic clock: its slope is the frequency error relative
to the reference.  The line is fitted over the recent history by weighted least squares,
the measurements of lowest delay weighted most.  Its slope corrects the clock's rate, so the
error no longer regrows between rounds; its value now, resting on many measurements, is a
better correction than the last measurement alone.

A clock's history starts over while it is acquiring: while what it needs moves from one
measurement to the next by more than a clock's frequency error could explain (SETTLED_NS,
plus DRIFT_LIMIT over the time between), as when it joins seconds off or its reference
settles; and until MIN_FIT_POINTS measurements came after the last such move, each
correction is applied as measured.  Once the history knows its own scatter, a
measurement further off the line than that scatter allows, and than its own round trip
explains, is held back, not applied (a popcorn spike); JUMP_AFTER of them in a row are a
real move of the reference (a new leader, a server stepped) and restart the history from
them.  A measurement that is merely slow is not held back: its low weight is enough.
"""

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

NS_PER_S = 1_000_000_000
MAX_POINTS = 64
"""As chrony's sourcestats keeps at most: a minute of one-second syncs.  The longer the
history, the better the slope, and the further back a clock's exchanges stay useful to it
(clocksync.core.intervals)."""
MIN_FIT_POINTS = 3
SETTLED_NS = 1_000_000
DRIFT_LIMIT = 500e-6
"""While acquiring, a need that moved by more than SETTLED_NS (1 ms) plus DRIFT_LIMIT (500
ppm, more than any crystal and a host's own slewing together) times the time since the
last measurement means the clock or its reference has just moved: the history so far no
longer describes it."""
SPIKE_RATIO = 5.0
SPIKE_FLOOR_NS = 20_000
"""No measurement within 20 µs of the line is a spike, however tight the history."""
SPIKE_MIN_POINTS = 5
JUMP_AFTER = 3
SIGMA_FLOOR_NS = 5_000
"""The least spread taken for a measurement of the lowest delay seen; one whose round trip
took longer may be off by up to half the excess as well, and weighs accordingly less."""


@dataclass(frozen=True)
class Point:
    """What the clock needed in total (`needed_ns`) at monotonic instant `mono_ns`, from a
    measurement whose round trip took `delay_ns`, where known."""

    mono_ns: int
    needed_ns: int
    delay_ns: int | None = None


@dataclass(frozen=True)
class Fit:
    """The line through a history: `needed_at(mono)` and its slope, the frequency error
    relative to the reference (dimensionless, ns per ns), with its standard error."""

    origin_mono: int
    origin_needed: int
    intercept_ns: float
    slope: float
    slope_error: float
    residual_ns: float
    points: int

    def needed_at(self, mono: int) -> float:
        return self.origin_needed + self.intercept_ns + self.slope * (mono - self.origin_mono)

    def spike_limit_ns(self, point: Point) -> float:
        """How far from the line `point` may lie and still be believed: as far as its own
        round trip allows (an exchange is off by at most half its delay), and a few times
        the history's scatter, with the slope's uncertainty carried out to it."""
        carried = self.slope_error * (point.mono_ns - self.origin_mono)
        scatter = SPIKE_RATIO * math.hypot(self.residual_ns, carried)
        own = 0 if point.delay_ns is None else point.delay_ns / 2
        return max(SPIKE_FLOOR_NS, scatter, own)


def weights(points: Sequence[Point]) -> list[float]:
    """1/σ² per point: σ is half the point's delay above the lowest, plus a floor.

    The floor is SIGMA_FLOOR_NS, or a quarter of the spread between the lowest and the
    median delay if that is more: on a jittery path even the quickest exchange seen may
    have waited, and weights that trusted it alone would make the line hinge on one point.
    """
    delays = sorted(p.delay_ns for p in points if p.delay_ns is not None)
    lowest = delays[0] if delays else 0
    spread = delays[len(delays) // 2] - lowest if delays else 0
    floor = max(SIGMA_FLOOR_NS, spread / 4)
    sigmas = [floor + (0 if p.delay_ns is None else (p.delay_ns - lowest) / 2) for p in points]
    return [1.0 / (sigma * sigma) for sigma in sigmas]


def fit(points: Sequence[Point]) -> Fit:
    """Weighted least squares through at least two points, about the latest point (where the
    line is used), in floats relative to it so that nanosecond counts keep their precision."""
    if len(points) < 2:
        raise ValueError("a line needs two points")
    origin = points[-1]
    xs = [float(p.mono_ns - origin.mono_ns) for p in points]
    ys = [float(p.needed_ns - origin.needed_ns) for p in points]
    ws = weights(points)
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
    dof = len(points) - 2
    slope_error = math.sqrt(squares / dof / sxx) if dof > 0 else math.inf
    return Fit(
        origin_mono=origin.mono_ns,
        origin_needed=origin.needed_ns,
        intercept_ns=intercept,
        slope=slope,
        slope_error=slope_error,
        residual_ns=math.sqrt(squares / total * len(points) / dof) if dof > 0 else math.inf,
        points=len(points),
    )


class Verdict(Enum):
    """What to do with a measurement."""

    APPLY = "apply"
    """Apply it as measured: the clock is acquiring, or its reference just moved."""
    FIT = "fit"
    """Apply the line through the history, which now includes it."""
    HOLD = "hold"
    """A spike: apply nothing."""


class Tracking:
    """One clock's history of needs, and the line through it, fitted once each time the
    history changes (statuses and corrections read it far more often)."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        if max_points < MIN_FIT_POINTS:
            raise ValueError(f"a history needs at least {MIN_FIT_POINTS} points")
        self._points: deque[Point] = deque(maxlen=max_points)
        self._line: Fit | None = None
        self._suspects: list[Point] = []
        self.held = 0
        """Measurements held back so far (spikes, or the first signs of a jump)."""

    @property
    def points(self) -> int:
        return len(self._points)

    def line(self) -> Fit | None:
        """The line through the history, once it has MIN_FIT_POINTS points."""
        return self._line

    def _refit(self) -> None:
        self._line = fit(self._points) if len(self._points) >= MIN_FIT_POINTS else None

    def _judge(self, point: Point, line: Fit | None) -> bool:
        """Whether `point` may join the history: always while the history is too short to
        know its own scatter (SPIKE_MIN_POINTS), then only near the line."""
        if line is None or line.points < SPIKE_MIN_POINTS:
            return True
        return abs(point.needed_ns - line.needed_at(point.mono_ns)) <= line.spike_limit_ns(point)

    def restart(self) -> None:
        """Forget the history: the clock was moved by other means."""
        self._points.clear()
        self._suspects.clear()
        self._line = None

    def add(self, point: Point) -> Verdict:
        """Take a measurement; say how to apply it."""
        line = self._line
        if line is None:
            if self._points and _moved(self._points[-1], point):
                self._points.clear()
            self._points.append(point)
            self._refit()
            return Verdict.APPLY
        if not self._judge(point, line):
            self._suspects.append(point)
            if len(self._suspects) < JUMP_AFTER:
                self.held += 1
                return Verdict.HOLD
            self._points.clear()
            self._points.extend(self._suspects)
            self._suspects.clear()
            self._refit()
            return Verdict.APPLY
        self._suspects.clear()
        self._points.append(point)
        self._refit()
        return Verdict.FIT


def _moved(before: Point, after: Point) -> bool:
    """Whether the need moved between two measurements by more than drift explains."""
    explained = SETTLED_NS + DRIFT_LIMIT * abs(after.mono_ns - before.mono_ns)
    return abs(after.needed_ns - before.needed_ns) > explained
