"""How a clock follows its reference over time: frequency and filtered phase (chrony's
sourcestats and tracking).

Each correction a participant receives says how far its clock was from the reference when it
was measured.  Added to the clock's total adjustment at that instant, it gives what the clock
*needed* in total by then.  A reference that is itself steered (a Berkeley master moves its
clock every round, and changes its rate as the site's ensemble says) says by how much: its
own total adjustment then, and how that grows from now on (`Reference`).  What the clock
needs less what the reference did is what the two free-running clocks differ by, which
drifts along a straight line however either is steered: its slope is the clock's
frequency error against the reference's natural rate.  The history fits that line by
weighted least squares (clocksync.core.regression), the measurements of lowest delay
weighted most; the clock then slews to the line's value now plus the reference's
adjustment now, and runs at the line's slope plus the reference's frequency correction.
So a master's steering reaches its nodes exactly, not through a filter that would lag it,
and the filter only smooths what is noise: the measurements.

The slope reaches the clock's rate through a FrequencyEstimate (clocksync.core.frequency),
which a short or noisy history barely moves.

A clock's history starts over while it is acquiring: while what it needs moves from one
measurement to the next by more than a clock's frequency error could explain (SETTLED_NS,
plus DRIFT_LIMIT over the time between), as when it joins seconds off or its reference
settles; and until MIN_FIT_POINTS measurements came after the last such move, each
correction is applied as measured.  Once the history knows its own scatter, a measurement
further off the line than that scatter allows, and than its own round trip explains, is
held back, not applied (a popcorn spike).  But no filter may lock a clock onto a history
that has become wrong:

- two held-back measurements that agree with each other, among the last JUMP_WINDOW, are
  a real move (a new leader, a server stepped), and the history restarts from them, even
  if a measurement between them was taken;
- so are JUMP_AFTER held back among the last JUMP_WINDOW, agreeing or not (a wrong slope
  throws each new measurement further off, each its own way);
- and once the history is long, its residuals must change sign as noise does (the runs
  test): when they do not, the oldest points no longer fit the clock and are dropped.

A measurement that is merely slow is not held back: its low weight is enough.
"""

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from clocksync.core.frequency import FrequencyEstimate
from clocksync.core.regression import Fit, Sample, fit, too_few_runs

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
JUMP_WINDOW = 4
"""JUMP_AFTER held back among the last JUMP_WINDOW measurements restart the history."""
AGREE_PPM = 1.0
"""Two held-back measurements agree when they lie within their own half-delays (at least
SPIKE_FLOOR_NS) of each other, carried along the line, widened by three standard errors of
its slope plus AGREE_PPM times the time between them."""
RUNS_KEEP = 6
"""The runs test never cuts a history shorter than this."""
RESTART_SKEW = 100e-6
"""A history that restarts keeps its frequency, known no better than this: the new line's
first slope takes over."""


@dataclass(frozen=True)
class Reference:
    """How the reference clock is steered, as it says: all the correction it had taken at
    the measurement (`measured_ns`), and `later_ns` at monotonic instant `later_mono` (this
    clock's: when it said so), from which on that grows at `ppm`, its frequency correction."""

    measured_ns: int
    later_mono: int
    later_ns: int
    ppm: float

    def at(self, mono: int) -> float:
        """The reference's total adjustment at `mono`, as far as it said."""
        return self.later_ns + self.ppm * 1e-6 * (mono - self.later_mono)


@dataclass(frozen=True)
class Point:
    """What the clock needed in total (`needed_ns`) at monotonic instant `mono_ns`, from a
    measurement whose round trip took `delay_ns`, where known; and how the reference is
    steered, where it says."""

    mono_ns: int
    needed_ns: int
    delay_ns: int | None = None
    reference: Reference | None = None

    @property
    def sample(self) -> Sample:
        """What the clock needs apart from the reference's steering, for the line."""
        steered = 0 if self.reference is None else self.reference.measured_ns
        return Sample(self.mono_ns, float(self.needed_ns - steered), self.delay_ns)

    @property
    def reference_ppm(self) -> float:
        return 0.0 if self.reference is None else self.reference.ppm


class Verdict(Enum):
    """What to do with a measurement."""

    APPLY = "apply"
    """Apply it as measured: the clock is acquiring, or its reference just moved."""
    FIT = "fit"
    """Apply the line through the history, which now includes it."""
    HOLD = "hold"
    """A spike: apply nothing."""


def spike_limit_ns(line: Fit, point: Point) -> float:
    """How far from the line `point` may lie and still be believed: as far as its own round
    trip allows (an exchange is off by at most half its delay), and a few times the
    history's scatter, with the slope's uncertainty carried out to it."""
    carried = line.slope_error * (point.mono_ns - line.origin_mono)
    scatter = SPIKE_RATIO * math.hypot(line.residual_ns, carried)
    own = 0 if point.delay_ns is None else point.delay_ns / 2
    return max(SPIKE_FLOOR_NS, scatter, own)


class Tracking:
    """One clock's history of needs, the line through it (fitted once each time the
    history changes: statuses and corrections read it far more often), and its frequency.

    `frequency_ppm` is the clock's frequency correction when it starts (from a drift file,
    known within `frequency_error_ppm`; None: not known at all)."""

    def __init__(
        self,
        max_points: int = MAX_POINTS,
        *,
        frequency_ppm: float = 0.0,
        frequency_error_ppm: float | None = None,
    ) -> None:
        if max_points < MIN_FIT_POINTS:
            raise ValueError(f"a history needs at least {MIN_FIT_POINTS} points")
        self._points: deque[Point] = deque(maxlen=max_points)
        self._line: Fit | None = None
        self._recent: deque[Point | None] = deque(maxlen=JUMP_WINDOW - 1)
        """The last measurements before this one: those held back (suspects), None for
        those taken."""
        self._latest: Point | None = None
        self._estimate = FrequencyEstimate()
        if frequency_error_ppm is not None:
            self._estimate.skew = frequency_error_ppm * 1e-6
        self._anchor_ppm: float | None = frequency_ppm
        """The whole frequency correction to keep until the next point anchors the estimate
        against its reference's (at the start, and after a restart)."""
        self.held = 0
        """Measurements held back so far (spikes, or the first signs of a jump)."""

    @property
    def points(self) -> int:
        return len(self._points)

    def line(self) -> Fit | None:
        """The line through the history (less the reference's steering), once it has
        MIN_FIT_POINTS points."""
        return self._line

    def needed_at(self, mono: int) -> float | None:
        """What the clock needs in total at `mono` by the line and the reference's steering
        since its latest word, or None without a line."""
        line, latest = self._line, self._latest
        if line is None or latest is None:
            return None
        steered = 0.0 if latest.reference is None else latest.reference.at(mono)
        return line.value_at(mono) + steered

    def frequency_ppm(self) -> float | None:
        """The frequency correction the clock should run at: the estimated slope (until a
        line says, the one it ran at) plus the reference's own correction; None before the
        first measurement."""
        latest = self._latest
        if self._anchor_ppm is not None or latest is None:
            return None
        return self._estimate.value * 1e6 + latest.reference_ppm

    def slope(self) -> float | None:
        """How fast what the clock needs grows (ns per ns), for carrying measurements to
        another instant: the frequency it runs at once a line has estimated it, else the
        line's own, else None."""
        line, latest = self._line, self._latest
        if line is None or latest is None:
            return None
        if self._estimate.known:
            return self._estimate.value + latest.reference_ppm * 1e-6
        return line.slope + latest.reference_ppm * 1e-6

    @property
    def reference_ppm(self) -> float | None:
        """The reference's frequency correction, as it last said it (None: it never did)."""
        latest = self._latest
        return None if latest is None or latest.reference is None else latest.reference.ppm

    @property
    def frequency_error_ppm(self) -> float | None:
        """The frequency estimate's standard error, once anything is known of it."""
        return self._estimate.skew * 1e6 if self._estimate.known else None

    def restart(self, frequency_ppm: float | None = None) -> None:
        """Forget the history: the clock was moved by other means, or follows another
        reference.  The clock keeps running at `frequency_ppm` (its correction in force)
        until a new line says otherwise."""
        self._points.clear()
        self._recent.clear()
        self._line = None
        if frequency_ppm is not None:
            self._anchor_ppm = frequency_ppm
        self._estimate.doubt(RESTART_SKEW)

    def add(self, point: Point) -> Verdict:
        """Take a measurement; say how to apply it."""
        latest = self._latest
        if latest is not None and (latest.reference is None) != (point.reference is None):
            self.restart(self.frequency_ppm())  # one says how it is steered, the other not
        if self._anchor_ppm is not None:
            self._estimate.value = (self._anchor_ppm - point.reference_ppm) * 1e-6
            self._anchor_ppm = None
        self._latest = point
        verdict = self._judge(point)
        self._recent.append(point if verdict is Verdict.HOLD else None)
        line = self._line
        if verdict is not Verdict.HOLD and line is not None and line.points >= MIN_FIT_POINTS:
            self._estimate.update(line.slope, line.slope_error)
        return verdict

    def _judge(self, point: Point) -> Verdict:
        line = self._line
        if line is None:
            if self._points and _moved(self._points[-1], point):
                self._points.clear()
            self._points.append(point)
            self._refit()
            return Verdict.APPLY
        if line.points < SPIKE_MIN_POINTS or _near(line, point):
            self._points.append(point)
            self._refit(prune=True)
            return Verdict.FIT
        suspects = [p for p in self._recent if p is not None]
        agreeing = [s for s in suspects if _agree(line, s, point)]
        if agreeing or len(suspects) + 1 >= JUMP_AFTER:
            self._start_from([*(agreeing or suspects), point])
            return Verdict.APPLY
        self.held += 1
        return Verdict.HOLD

    def _start_from(self, points: Sequence[Point]) -> None:
        """The history restarts from `points`: the reference, or the clock, really moved."""
        self._points.clear()
        self._points.extend(points)
        self._recent.clear()
        self._estimate.doubt(RESTART_SKEW)
        self._refit()

    def _refit(self, *, prune: bool = False) -> None:
        """Fit the line; with `prune`, drop the oldest points while the runs test says the
        line does not describe them."""
        points = self._points
        if len(points) < MIN_FIT_POINTS:
            self._line = None
            return
        line = fit([p.sample for p in points])
        while prune and len(points) > RUNS_KEEP and too_few_runs(_residuals(line, points)):
            points.popleft()
            line = fit([p.sample for p in points])
        self._line = line


def _near(line: Fit, point: Point) -> bool:
    """Whether `point` lies near enough the line to join its history."""
    return abs(point.sample.value_ns - line.value_at(point.mono_ns)) <= spike_limit_ns(line, point)


def _agree(line: Fit, earlier: Point, later: Point) -> bool:
    """Whether two measurements the line refused agree with each other (see AGREE_PPM)."""
    apart = later.mono_ns - earlier.mono_ns
    moved = later.sample.value_ns - earlier.sample.value_ns - line.slope * apart
    halves = ((earlier.delay_ns or 0) + (later.delay_ns or 0)) / 2
    widened = (3 * line.slope_error + AGREE_PPM * 1e-6) * abs(apart)
    return abs(moved) <= max(SPIKE_FLOOR_NS, halves) + widened


def _residuals(line: Fit, points: Sequence[Point]) -> list[float]:
    """The residuals the runs test judges: of the measurements no slower than the median,
    since a slow one's residual is mostly its own asymmetry."""
    delays = sorted(p.delay_ns for p in points if p.delay_ns is not None)
    median = delays[len(delays) // 2] if delays else None
    return [
        p.sample.value_ns - line.value_at(p.mono_ns)
        for p in points
        if median is None or p.delay_ns is None or p.delay_ns <= median
    ]


def _moved(before: Point, after: Point) -> bool:
    """Whether the need moved between two measurements by more than drift explains."""
    explained = SETTLED_NS + DRIFT_LIMIT * abs(after.mono_ns - before.mono_ns)
    return abs(after.sample.value_ns - before.sample.value_ns) > explained
