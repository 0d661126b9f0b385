"""The site's frequency: the fault-tolerant mean of its clocks' natural rates, learnt from
free-running offsets, whatever anyone's steering."""

import pytest

from clocksync.master.ensemble import ENSEMBLE_MIN_POINTS, Ensemble

NS_PER_S = 1_000_000_000
BASE = 9_000 * NS_PER_S


def feed(ensemble: Ensemble, rates_ppm: dict[str, float], seconds: int, start: int = 0) -> None:
    """Each clock's free-running offset from the leader's, growing at its natural rate
    relative to the leader's, measured once a second within ±3 µs."""
    for second in range(start, start + seconds):
        for index, (name, ppm) in enumerate(rates_ppm.items()):
            noise = ((second * 7 + index * 3) % 7 - 3) * 1_000
            offset = 2_000_000 * index + round(second * NS_PER_S * ppm * 1e-6) + noise
            ensemble.add(name, BASE + second * NS_PER_S, offset, 40_000)


def test_the_site_runs_at_the_mean_natural_rate_of_its_clocks_the_leaders_included() -> None:
    ensemble = Ensemble("lab", 0.0, None)
    feed(ensemble, {"KMC": 40.0, "MIT": 80.0, "SOLS": -20.0}, 30)
    rate = ensemble.rate()
    assert rate is not None
    assert rate.clocks == 4
    assert rate.ppm == pytest.approx((0 + 40 + 80 - 20) / 4, abs=0.2)
    assert rate.error_ppm < 1
    for _ in range(5):
        frequency = ensemble.update()
    assert frequency == pytest.approx(25.0, abs=0.2)


def test_a_clock_far_off_the_others_is_left_out() -> None:
    """A broken crystal, or a liar, does not drag the site: hundreds of ppm from the others
    it is left out of the average; thousands away, no line is ever fitted to it."""
    ensemble = Ensemble("lab", 0.0, None)
    feed(ensemble, {"KMC": 10.0, "MIT": -10.0, "SOLS": 5.0, "TAPMI": 400.0, "X": 3_000.0}, 30)
    rate = ensemble.rate()
    assert rate is not None
    assert rate.excluded == {"TAPMI"}
    assert rate.ppm == pytest.approx(5.0 / 4, abs=0.2)


def test_a_clock_counts_once_its_rate_is_known() -> None:
    ensemble = Ensemble("lab", 0.0, None)
    assert ensemble.rate() is None
    assert ensemble.update() is None
    feed(ensemble, {"KMC": 40.0}, ENSEMBLE_MIN_POINTS - 1)
    assert ensemble.rate() is None, "too few measurements yet"
    feed(ensemble, {"KMC": 40.0}, 10, start=ENSEMBLE_MIN_POINTS - 1)
    rate = ensemble.rate()
    assert rate is not None
    assert rate.ppm == pytest.approx(20.0, abs=0.5)


def test_a_leader_that_takes_over_starts_from_the_rate_it_ran_at() -> None:
    """A standby that followed the old leader already runs at the site's rate: it keeps
    that until its own ensemble knows better."""
    ensemble = Ensemble("annex", 12.5, 0.3)
    assert ensemble.estimate.value == pytest.approx(12.5e-6)
    assert ensemble.estimate.known
    feed(ensemble, {"lab": -12.0, "KMC": -13.0}, 3)
    assert ensemble.update() is None
    assert ensemble.estimate.value == pytest.approx(12.5e-6)


def test_a_clock_that_left_is_forgotten() -> None:
    ensemble = Ensemble("lab", 0.0, None)
    feed(ensemble, {"KMC": 40.0, "MIT": 0.0}, 20)
    ensemble.forget("KMC")
    rate = ensemble.rate()
    assert rate is not None
    assert rate.ppm == pytest.approx(0.0, abs=0.2)
