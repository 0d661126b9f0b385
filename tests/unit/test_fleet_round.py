"""The leader's side of a fleet round: how many it asks to report, which reports it keeps."""

import pytest

from clocksync.core.measurement import Exchange
from clocksync.core.sample import Sample
from clocksync.master.fleet import MAX_REPORTS, REPORTS_WANTED, FleetRound, report_share
from clocksync.protocol.messages import FleetReport, FleetResult

EPOCH = 1_800_000_000_000


@pytest.mark.parametrize("asked", [0, 1, REPORTS_WANTED, 10 * REPORTS_WANTED, 10_000])
def test_about_the_wanted_number_of_reports_is_asked_for(asked: int) -> None:
    share = report_share(asked)
    assert 0 < share <= 1
    assert share * asked == pytest.approx(min(asked, REPORTS_WANTED))


def test_one_report_per_node_is_kept_and_no_more_than_the_limit() -> None:
    fleet = FleetRound("lab", EPOCH, 3, 1.0)
    assert fleet.add_report(FleetReport("n-0", EPOCH, 3, 0.001, 1e-4)) is None
    assert fleet.add_report(FleetReport("n-0", EPOCH, 3, 0.5, 1e-4)) is not None
    assert fleet.offsets({}) == {"n-0": 0.001}
    for index in range(1, MAX_REPORTS + 10):
        fleet.add_report(FleetReport(f"n-{index}", EPOCH, 3, 0.0, 1e-4))
    assert len(fleet.offsets({})) == MAX_REPORTS


def test_a_report_from_a_standbys_clock_counts_from_the_leaders() -> None:
    fleet = FleetRound("lab", EPOCH, 3, 1.0, ("lab-2", "lab-3"))
    t1 = 1_900_000_000_000_000_000
    ahead = 2_000_000  # lab-2 is 2 ms ahead of the leader
    polled = {"lab-2": Sample(Exchange(t1, t1 + 30_000 + ahead, t1 + 30_000 + ahead, t1 + 60_000))}
    assert fleet.add_report(FleetReport("n-0", EPOCH, 3, 0.001, 1e-4)) is None
    assert fleet.add_report(FleetReport("n-1", EPOCH, 3, 0.001, 1e-4, "lab-2")) is None
    assert fleet.add_report(FleetReport("n-2", EPOCH, 3, 0.001, 1e-4, "lab-3")) is None
    assert fleet.add_report(FleetReport("n-3", EPOCH, 3, 0.001, 1e-4, "lab-9")) is not None
    offsets = fleet.offsets(polled)
    assert offsets == pytest.approx({"n-0": 0.001, "n-1": 0.003}), "lab-3 was not polled"


def test_the_tick_and_the_result_name_the_round_and_term() -> None:
    fleet = FleetRound("lab", EPOCH, 3, 0.25)
    tick = fleet.tick(0.05, 0.4)
    fields = (tick.master, tick.epoch, tick.round, tick.settle_s, tick.window_s, tick.report_share)
    assert fields == ("lab", EPOCH, 3, 0.05, 0.4, 0.25)
    assert fleet.result(-2e-5).average_s == -2e-5


def test_with_standbys_answering_the_fleets_size_comes_from_the_reports_heard() -> None:
    fleet = FleetRound("lab", EPOCH, 3, 0.1, ("lab-2",))
    for index in range(MAX_REPORTS + 76):  # more than are kept: all count
        fleet.add_report(FleetReport(f"n-{index}", EPOCH, 3, 0.0, 1e-4))
    assert fleet.asked == 0
    assert fleet.fleet_size() == 11_000
    assert report_share(fleet.fleet_size()) == pytest.approx(REPORTS_WANTED / 11_000)


def test_the_result_measures_the_servers_polled_whose_drift_is_known() -> None:
    fleet = FleetRound("lab", EPOCH, 3, 1.0, ("lab-2", "lab-3", "lab-4"))
    assert fleet.tick(0.0, 0.4).servers == ("lab-2", "lab-3", "lab-4")
    t1 = 1_900_000_000_000_000_000
    polled = {
        "lab-2": Sample(
            Exchange(t1, t1 + 30_000 + 2_000_000, t1 + 30_000 + 2_000_000, t1 + 60_000)
        ),
        "lab-3": Sample(Exchange(t1, t1 + 30_000, t1 + 30_000, t1 + 60_000)),
        "KMC": Sample(Exchange(t1, t1 + 30_000, t1 + 30_000, t1 + 60_000)),
    }
    result = fleet.result(1e-5, polled=polled, rates_ppm={"lab-2": 1.5, "lab-4": 1.0})
    (server,) = result.servers  # lab-3's drift is unknown, lab-4 was not polled
    assert (server.name, server.offset_s, server.measured, server.rate_ppm) == (
        "lab-2",
        0.002,
        t1 + 30_000,
        1.5,
    )
    assert server.bound_s == pytest.approx(30e-6, abs=1e-6)
    assert FleetResult.decode(result.encode()) == result
