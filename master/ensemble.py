"""The site's frequency: the average of its clocks' natural frequencies (an ensemble time
scale, as timing labs build one from free-running clocks).

Every clock of a site is steered to the leader, so the offsets the leader measures say
nothing of the frequency they all share: a leader that learnt its own rate from them
would follow its own noise, a random walk (a site of perfect clocks wandered tens of ppm
in minutes).  But every polled clock reports its total adjustment with each reply, and the
leader knows its own: the measured offset less the node's adjustment plus the leader's is
what the two *free-running* clocks differ by, which drifts along a line at the difference
of their natural rates, however anyone is steered.  Per clock the leader fits that line
(a Tracking of its own, clocksync.core.tracking); the fault-tolerant average of the slopes,
the leader's own 0 among them, is how far the clocks' mean natural rate lies from the
leader's natural rate; and that is the frequency correction the leader runs at.  A clock
whose rate is not yet known within ENSEMBLE_MAX_SKEW_PPM does not count; a clock far off
the others (a broken crystal, a liar) is left out by the same rule that leaves far-off
offsets out of a round's average (clocksync.core.selection).  The leader's own estimate
moves to each round's answer as far as the two uncertainties allow
(clocksync.core.frequency), so that one round's noise does not move the site's rate.
"""

import math
from dataclasses import dataclass

from clocksync.core.frequency import FrequencyEstimate
from clocksync.core.selection import fault_tolerant_average
from clocksync.core.tracking import Point, Tracking

ENSEMBLE_MAX_SKEW_PPM = 10.0
ENSEMBLE_MIN_POINTS = 5
FREQUENCY_WINDOW_PPM = 10.0
"""The narrowest window around the median natural frequency whose clocks are averaged."""


@dataclass(frozen=True)
class Rate:
    """The site's mean natural frequency against the leader's, in ppm, within `error_ppm`
    (a standard error), from `clocks` clocks (the leader's included); `excluded` were far
    off the others."""

    ppm: float
    error_ppm: float
    clocks: int
    excluded: frozenset[str]


class Ensemble:
    """The leader's view of its clocks' natural frequencies, and the site's."""

    def __init__(self, leader: str, frequency_ppm: float, error_ppm: float | None) -> None:
        """`frequency_ppm`: the leader's frequency correction when it takes the lead,
        known within `error_ppm` (None: not known)."""
        self.leader = leader
        self._clocks: dict[str, Tracking] = {}
        self.estimate = FrequencyEstimate(frequency_ppm * 1e-6)
        if error_ppm is not None:
            self.estimate.skew = error_ppm * 1e-6

    def add(self, clock: str, mono_ns: int, free_offset_ns: int, delay_ns: int) -> None:
        """What `clock`'s free-running clock less the leader's was at `mono_ns`, measured
        by an exchange that took `delay_ns` on the wire."""
        history = self._clocks.get(clock)
        if history is None:
            history = self._clocks[clock] = Tracking(frequency_ppm=0.0)
        history.add(Point(mono_ns, free_offset_ns, delay_ns))

    def forget(self, clock: str) -> None:
        self._clocks.pop(clock, None)

    def rate(self) -> Rate | None:
        """The clocks' mean natural rate against the leader's, or None while no other
        clock's is known well enough to count."""
        known = {}
        errors = {}
        for name, history in self._clocks.items():
            ppm, error = history.frequency_ppm(), history.frequency_error_ppm
            line = history.line()
            if ppm is None or error is None or line is None:
                continue
            if line.points >= ENSEMBLE_MIN_POINTS and error <= ENSEMBLE_MAX_SKEW_PPM:
                known[name], errors[name] = ppm, error
        if not known:
            return None
        offsets = {self.leader: 0.0, **known}
        selection = fault_tolerant_average(offsets, min_window_s=FREQUENCY_WINDOW_PPM)
        counted = selection.included - {self.leader}
        error = math.sqrt(sum(errors[name] ** 2 for name in counted)) / len(selection.included)
        return Rate(selection.average_s, error, len(selection.included), selection.excluded)

    def update(self) -> float | None:
        """Move the leader's frequency correction towards the site's mean natural rate;
        return it (in ppm), or None while nothing is known of the rate."""
        rate = self.rate()
        if rate is None:
            return None
        self.estimate.update(rate.ppm * 1e-6, rate.error_ppm * 1e-6)
        return self.estimate.value * 1e6
