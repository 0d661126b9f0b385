"""The leader's side of a fleet round: how many it asks to report, which reports it keeps."""

import pytest

from clocksync.master.fleet import MAX_REPORTS, REPORTS_WANTED, FleetRound, report_share
from clocksync.protocol.messages import FleetReport

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
    assert fleet.offsets == {"n-0": 0.001}
    for index in range(1, MAX_REPORTS + 10):
        fleet.add_report(FleetReport(f"n-{index}", EPOCH, 3, 0.0, 1e-4))
    assert len(fleet.offsets) == MAX_REPORTS


def test_the_tick_and_the_result_name_the_round_and_term() -> None:
    fleet = FleetRound("lab", EPOCH, 3, 0.25)
    tick = fleet.tick(0.05, 0.4)
    fields = (tick.master, tick.epoch, tick.round, tick.settle_s, tick.window_s, tick.report_share)
    assert fields == ("lab", EPOCH, 3, 0.05, 0.4, 0.25)
    assert fleet.result(-2e-5).average_s == -2e-5
