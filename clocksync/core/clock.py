"""The software clock every participant keeps, and its discipline (chrony's "local clock").

A participant cannot set its host's clock (no CAP_SYS_TIME on most devices), so it keeps its
own: the host's monotonic clock scaled by a simulated frequency error, started at the host's
system time plus a simulated offset.  Corrections are slewed at a bounded rate, so the clock
never runs backwards; only a correction above the step threshold is stepped, forwards at any
time and backwards only during the first few updates (chrony's `makestep 0.1 3`).  Once in
service a correction larger than the maximum change is refused, forwards as backwards
(chrony's `maxchange`), and no correction may take the clock outside the years 1970 to
9999, the times the wire format can write.  A frequency correction, estimated from the
clock's history (clocksync.core.tracking), changes its rate within `max_frequency_ppm`.

The clock is a chain of linear segments.  Each correction starts a new segment at the reading
of the old one, which keeps readings continuous; the previous segment is kept so that a
receive timestamp taken just before a correction is still read on the right segment.
The clock is owned by one thread (the role's loop) and is not locked.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

NS_PER_S = 1_000_000_000
MAX_DRIFT_PPM = 100_000.0
TRUTH_BRACKETS = 5
# How far a host's monotonic clock may run from true time: an unsynchronised crystal is
# within about 100 ppm, and a host NTP daemon slews it by at most 500 ppm (Linux adjtime).
HOST_TOLERANCE_PPM = 500.0
MAX_READING_NS = 253_402_300_799_999_999_999
"""9999-12-31T23:59:59.999999999Z: the last time RFC 3339 can write."""


class Applied(Enum):
    """How a correction was carried out."""

    SLEW = "slew"
    STEP = "step"
    REFUSED = "refused"


@dataclass(frozen=True)
class Discipline:
    """How corrections are applied.

    max_slew_ppm: the fastest rate at which a slew changes the clock (chrony's maxslewrate).
    step_threshold_s: corrections at least this large are stepped instead of slewed.
    first_updates: a participant joins with a clock that may be far off: in this many first
        updates a correction may be of any size and may step backwards.  Later, backward
        corrections are slewed however large, so time never runs backwards in service;
        forward steps never break ordering and are always allowed.
    max_change_s: in service (after the first updates), a correction larger than this is
        refused, forwards as backwards: one bad or forged measurement cannot move the clock
        further (chrony's maxchange).
    max_frequency_ppm: the largest frequency correction the clock takes (chrony's maxdrift):
        a crystal further off than this is broken, not drifting.
    """

    max_slew_ppm: float = 83_333.0
    step_threshold_s: float = 0.1
    first_updates: int = 3
    max_change_s: float = 1.0
    max_frequency_ppm: float = 5_000.0

    def __post_init__(self) -> None:
        if not 0 < self.max_slew_ppm <= 500_000:
            raise ValueError("max_slew_ppm must be in (0, 500000]")
        if not (math.isfinite(self.step_threshold_s) and self.step_threshold_s > 0):
            raise ValueError("step_threshold_s must be a positive number")
        if self.first_updates < 0:
            raise ValueError("first_updates must not be negative")
        if not (math.isfinite(self.max_change_s) and self.max_change_s > 0):
            raise ValueError("max_change_s must be a positive number")
        if not 0 < self.max_frequency_ppm <= MAX_DRIFT_PPM:
            raise ValueError(f"max_frequency_ppm must be in (0, {MAX_DRIFT_PPM:g}]")


@dataclass(frozen=True)
class _Segment:
    """Readings from `start_mono` on: free-running at `rate`, corrected by `frequency`
    (fractional), plus a slew of `slew_ns`."""

    start_mono: int
    start_reading: int
    adjusted_before: int
    rate: float
    frequency: float
    slew_ns: int
    slew_rate: float

    def slewed(self, mono: int) -> float:
        elapsed = mono - self.start_mono
        done = min(abs(self.slew_ns), elapsed * self.slew_rate)
        return math.copysign(done, self.slew_ns)

    def corrected(self, mono: int) -> float:
        """The correction applied from the segment's start to `mono`: slew and frequency."""
        return self.slewed(mono) + (mono - self.start_mono) * self.frequency

    def reading(self, mono: int) -> int:
        elapsed = mono - self.start_mono
        return self.start_reading + round(elapsed * self.rate + self.corrected(mono))

    def slew_end(self) -> int:
        return self.start_mono + math.ceil(abs(self.slew_ns) / self.slew_rate)


class SoftwareClock:
    """A disciplined clock driven by the host's monotonic clock.

    Every reading is taken at a monotonic instant in nanoseconds; `reading_at` converts a
    receive timestamp taken earlier (paho stamps packets with the monotonic clock).
    """

    def __init__(
        self,
        *,
        offset_s: float = 0.0,
        drift_ppm: float = 0.0,
        frequency_ppm: float = 0.0,
        discipline: Discipline | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not math.isfinite(offset_s):
            raise ValueError("offset_s must be finite")
        if not (math.isfinite(drift_ppm) and abs(drift_ppm) <= MAX_DRIFT_PPM):
            raise ValueError(f"drift_ppm must be within ±{MAX_DRIFT_PPM:g}")
        self.discipline = discipline or Discipline()
        self._monotonic_ns = monotonic_ns
        self._wall_ns = wall_ns
        self._updates = 0
        self.refused = 0
        self._last_step_mono: int | None = None
        mono = monotonic_ns()
        start = wall_ns() + round(offset_s * NS_PER_S)
        if not 0 <= start <= MAX_READING_NS:
            raise ValueError("offset_s takes the clock outside the years 1970 to 9999")
        self._segment = _Segment(
            start_mono=mono,
            start_reading=start,
            adjusted_before=0,
            rate=1.0 + drift_ppm * 1e-6,
            frequency=self._bounded(frequency_ppm) * 1e-6,
            slew_ns=0,
            slew_rate=self.discipline.max_slew_ppm * 1e-6,
        )
        self._previous = self._segment

    def monotonic_ns(self) -> int:
        return self._monotonic_ns()

    def host_ns(self) -> int:
        """The host's system clock: what the truth signal compares with, and where a
        participant takes its incarnation number (epoch) from."""
        return self._wall_ns()

    def _segment_at(self, mono: int) -> _Segment:
        return self._previous if mono < self._segment.start_mono else self._segment

    def reading_at(self, mono: int) -> int:
        """The clock's reading, in ns since the Unix epoch, at monotonic instant `mono`."""
        return self._segment_at(mono).reading(mono)

    def now_ns(self) -> int:
        return self.reading_at(self._monotonic_ns())

    def reading_now(self) -> int:
        """Now, for a reader on another thread than the one correcting the clock (an
        application embedding a participant): the segment in force is read once, before the
        instant, so a correction made meanwhile cannot mix two segments' readings."""
        segment = self._segment
        return segment.reading(max(self._monotonic_ns(), segment.start_mono))

    def adjusted_ns(self, mono: int | None = None) -> int:
        """All correction applied so far (steps and slews), at `mono` or now.

        A correction is computed from a measurement taken earlier; the difference of this
        total between then and now is what was already applied in between.
        """
        mono = self._monotonic_ns() if mono is None else mono
        segment = self._segment_at(mono)
        return segment.adjusted_before + round(segment.corrected(mono))

    def slewed_since(self, adjusted_then: int, mono_then: int) -> int:
        """What the clock was moved by since `mono_then`, when its total adjustment was
        `adjusted_then`, apart from its frequency correction: the slews and steps.  A
        correction measured then is relative to a clock running at that frequency, which
        it has kept running at since."""
        mono = self._monotonic_ns()
        frequency = self._segment.frequency * (mono - mono_then)
        return self.adjusted_ns(mono) - adjusted_then - round(frequency)

    def slew_remaining_ns(self, mono: int | None = None) -> int:
        """What is left at `mono` (default now) of the slew under way."""
        segment = self._segment
        mono = self._monotonic_ns() if mono is None else max(mono, segment.start_mono)
        return segment.slew_ns - round(segment.slewed(mono))

    def slew_end_mono(self) -> int | None:
        """The monotonic instant the current slew completes, or None when not slewing."""
        end = self._segment.slew_end()
        return end if end > self._monotonic_ns() else None

    def rate_error_ppm(self, *, may_slew: bool) -> float:
        """A bound on how far this clock's rate is from true time, in ppm, for the moments
        ahead: its simulated drift, the host's tolerance, and the fastest slew if one is
        under way or, `may_slew`, could start at any moment (a corrected participant)."""
        segment = self._segment
        slewing = may_slew or self.slew_end_mono() is not None
        slew_ppm = segment.slew_rate * 1e6 if slewing else 0.0
        own_ppm = abs(segment.rate + segment.frequency - 1.0) * 1e6
        return own_ppm + slew_ppm + HOST_TOLERANCE_PPM

    @property
    def natural_ppm(self) -> float:
        """How fast this clock runs from the host's monotonic clock before any correction:
        its simulated frequency error."""
        return (self._segment.rate - 1.0) * 1e6

    @property
    def frequency_ppm(self) -> float:
        """The frequency correction in force, in ppm (positive: the clock runs faster)."""
        return self._segment.frequency * 1e6

    def _bounded(self, frequency_ppm: float) -> float:
        limit = self.discipline.max_frequency_ppm
        if not math.isfinite(frequency_ppm):
            raise ValueError("the frequency correction must be finite")
        return max(-limit, min(limit, frequency_ppm))

    @property
    def updates(self) -> int:
        return self._updates

    def correct_measured(self, correction_ns: int, adjusted_then: int) -> tuple[Applied, int]:
        """Apply a correction computed from a measurement taken when the clock's total
        adjustment was `adjusted_then`: what was slewed since then is already done.
        Returns how it was applied and what remained to apply."""
        remaining = correction_ns - (self.adjusted_ns() - adjusted_then)
        return self.correct(remaining), remaining

    def correct(self, delta_ns: int, *, frequency_ppm: float | None = None) -> Applied:
        """Move the clock by `delta_ns` from now on, superseding what is left of a slew, and
        set its frequency correction to `frequency_ppm` (bounded by the discipline's
        maximum), or refuse (see `refusal`) and change nothing.

        The caller passes what remains to be applied of a correction measured earlier, so
        the leftover of the previous slew is dropped rather than added.
        """
        frequency = None if frequency_ppm is None else self._bounded(frequency_ppm) * 1e-6
        mono = self._monotonic_ns()
        current = self._segment
        reading = current.reading(mono)
        if self.refusal(delta_ns, reading) is not None:
            self.refused += 1
            return Applied.REFUSED
        adjusted = current.adjusted_before + round(current.corrected(mono))
        applied = Applied.STEP if self._should_step(delta_ns) else Applied.SLEW
        stepped = delta_ns if applied is Applied.STEP else 0
        self._previous = current
        self._segment = _Segment(
            start_mono=mono,
            start_reading=reading + stepped,
            adjusted_before=adjusted + stepped,
            rate=current.rate,
            frequency=current.frequency if frequency is None else frequency,
            slew_ns=delta_ns - stepped,
            slew_rate=current.slew_rate,
        )
        self._updates += 1
        if applied is Applied.STEP:
            self._last_step_mono = mono
        return applied

    def stepped_since(self, mono: int) -> bool:
        """Whether the clock was stepped after monotonic instant `mono`.

        A timestamp taken before a step cannot be paired with one taken after it: the pair
        would carry the step as if it were time on the wire.
        """
        return self._last_step_mono is not None and self._last_step_mono >= mono

    def refusal(self, delta_ns: int, reading: int | None = None) -> str | None:
        """Why a correction of `delta_ns` now would be refused, or None: it is larger than
        the maximum change and the clock is in service, or it would take the clock (now
        reading `reading`) outside the times the wire format can write."""
        in_service = self._updates >= self.discipline.first_updates
        if in_service and abs(delta_ns) > self.discipline.max_change_s * NS_PER_S:
            return (
                f"{delta_ns / NS_PER_S:+.6f} s is more than the maximum change "
                f"of {self.discipline.max_change_s:g} s"
            )
        reading = self.now_ns() if reading is None else reading
        if not 0 <= reading + delta_ns <= MAX_READING_NS:
            return f"{delta_ns / NS_PER_S:+.6f} s would take the clock outside 1970 to 9999"
        return None

    def _should_step(self, delta_ns: int) -> bool:
        if abs(delta_ns) < self.discipline.step_threshold_s * NS_PER_S:
            return False
        return delta_ns > 0 or self._updates < self.discipline.first_updates

    def host_offset_ns(self) -> tuple[int, int]:
        """(this clock minus the host's system clock, the host time sampled): the truth signal.

        The system clock is read between two monotonic readings and compared with the clock
        at their midpoint.  Of a few such brackets the narrowest is kept: a process preempted
        inside one would otherwise misstate the truth by half the time it was away.
        """
        samples = []
        for _ in range(TRUTH_BRACKETS):
            before = self._monotonic_ns()
            host = self._wall_ns()
            after = self._monotonic_ns()
            samples.append((after - before, (before + after) // 2, host))
        _, middle, host = min(samples)
        return self.reading_at(middle) - host, host
