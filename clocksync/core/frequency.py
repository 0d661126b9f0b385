"""A clock's frequency estimate, moved by each new measurement only as far as the two
uncertainties allow (chrony's reference.c, get_clock_estimates).

Each fit of a clock's history gives a slope and its standard error (its skew).  Taking
the slope as it comes lets a short or noisy history throw the clock's rate anywhere: a fit
over three points, one of them milliseconds off, once gave a line at zero drift a
frequency of -972 ppm.  Instead the estimate moves towards each new slope by a gain of
3·s² / (3·s² + m²), s being the estimate's own skew and m the slope's; a slope whose skew
is above MAX_UPDATE_SKEW (chrony's maxupdateskew) does not move it at all; and the skew
grows by how far the two disagreed, so that a real change of rate is followed.
"""

import math
from dataclasses import dataclass

UNKNOWN_SKEW = 1.0
"""The skew of an estimate that knows nothing yet (chrony's "rather bad"): 10⁶ ppm."""
MAX_UPDATE_SKEW = 100e-6
MIN_SKEW = 1e-12
"""No estimate is better than this (chrony's MIN_SKEW): exact measurements still leave
room for the next."""


@dataclass
class FrequencyEstimate:
    """A frequency (dimensionless, ns per ns) and its skew (its standard error)."""

    value: float = 0.0
    skew: float = UNKNOWN_SKEW

    def update(self, measured: float, measured_skew: float) -> bool:
        """Move towards `measured`, known within `measured_skew`; say whether it moved."""
        if not (math.isfinite(measured) and math.isfinite(measured_skew)):
            return False
        if measured_skew > MAX_UPDATE_SKEW:
            return False
        expected, skew = self.value, max(self.skew, MIN_SKEW)
        measured_skew = max(measured_skew, MIN_SKEW)
        gain = 3 * skew**2 / (3 * skew**2 + measured_skew**2)
        value = expected + gain * (measured - expected)
        extra = math.sqrt((expected - value) ** 2 * (1 - gain) + (measured - value) ** 2 * gain)
        self.value = value
        self.skew = skew + gain * (measured_skew - skew) + extra
        return True

    def doubt(self, skew: float) -> None:
        """Know the value no better than `skew` from now on: its basis was found wrong."""
        self.skew = max(self.skew, skew)

    @property
    def known(self) -> bool:
        """Whether any measurement has moved the estimate yet."""
        return self.skew < UNKNOWN_SKEW
