"""A frequency estimate moves towards each new slope only as far as the two uncertainties
allow (chrony's get_clock_estimates)."""

import pytest

from clocksync.core.frequency import MAX_UPDATE_SKEW, FrequencyEstimate

PPM = 1e-6


def test_an_estimate_that_knows_nothing_takes_the_first_slope() -> None:
    estimate = FrequencyEstimate()
    assert not estimate.known
    assert estimate.update(40 * PPM, 5 * PPM)
    assert estimate.value == pytest.approx(40 * PPM, rel=1e-3)
    assert estimate.known


def test_a_short_noisy_history_barely_moves_a_known_estimate() -> None:
    """A line at zero drift, known within 0.1 ppm, then a three-point fit that says -972 ppm
    with a skew of 90 ppm (under the update limit): the estimate stays within a ppm."""
    estimate = FrequencyEstimate(0.0, 0.1 * PPM)
    assert estimate.update(-972 * PPM, 90 * PPM)
    assert abs(estimate.value) < 1 * PPM


def test_a_slope_known_worse_than_the_update_limit_is_ignored() -> None:
    estimate = FrequencyEstimate()
    assert not estimate.update(500 * PPM, 2 * MAX_UPDATE_SKEW)
    assert estimate.value == 0.0
    assert not estimate.known
    assert not estimate.update(float("nan"), 1 * PPM)


def test_a_real_change_of_rate_is_followed() -> None:
    """The skew grows by how far the measurements disagree with the estimate, so that a
    rate that really changed is taken within a few updates."""
    estimate = FrequencyEstimate(0.0, 0.5 * PPM)
    for _ in range(20):
        estimate.update(20 * PPM, 0.5 * PPM)
    assert estimate.value == pytest.approx(20 * PPM, abs=0.5 * PPM)


def test_exact_measurements_leave_room_for_the_next() -> None:
    estimate = FrequencyEstimate()
    estimate.update(10 * PPM, 0.0)
    estimate.update(10 * PPM, 0.0)
    assert estimate.update(11 * PPM, 0.0)
    assert estimate.value == pytest.approx(10.5 * PPM, abs=0.5 * PPM)


def test_doubt_widens_the_skew_only() -> None:
    estimate = FrequencyEstimate(5 * PPM, 0.1 * PPM)
    estimate.doubt(100 * PPM)
    assert estimate.value == 5 * PPM
    assert estimate.skew == 100 * PPM
    estimate.doubt(1 * PPM)
    assert estimate.skew == 100 * PPM
