import logging

import pytest

from clocksync.app.monitor import as_text, duration
from clocksync.app.siteview import SiteView
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Inbound
from clocksync.protocol.messages import Leader, RoundEntry, RoundSummary, Status
from clocksync.protocol.topics import Topics

S = 1_000_000_000
HOST = 1_800_000_000 * S
TOPICS = Topics("kitchen")


def status(name: str, **fields: object) -> Status:
    base: dict[str, object] = {
        "name": name,
        "role": RoleKind.NODE,
        "state": State.ONLINE,
        "sync": SyncMode.BERKELEY,
        "leader": "lab",
    }
    return Status(**(base | fields))  # type: ignore[arg-type]


def summary(round_number: int, *entries: RoundEntry, epoch: int = 3) -> RoundSummary:
    return RoundSummary(
        master="lab",
        epoch=epoch,
        round=round_number,
        started=1_800_000_000 * S + round_number * 2 * S,
        average_s=0.0,
        window_s=0.2,
        spread_s=40e-6,
        participants=entries,
        fleet_asked=10,
        fleet_reported=4,
    )


def fed(*messages: tuple[str, bytes, int]) -> SiteView:
    view = SiteView(TOPICS)
    for topic, payload, at in messages:
        view.handle(Inbound(topic, payload, at))
    return view


def test_a_snapshot_joins_each_participants_status_with_its_row_in_the_latest_round() -> None:
    entry = RoundEntry("KMC", RoleKind.NODE, -20e-6, 300e-6, 20e-6, False)
    view = fed(
        (TOPICS.leader, Leader("lab", 3, 1_800_000_000 * S).encode(), 0),
        (TOPICS.status("lab"), status("lab", role=RoleKind.MASTER, host_offset_s=0.5,
                                      host_time=HOST).encode(), 0),
        (TOPICS.status("KMC"), status("KMC", host_offset_s=0.50003, host_time=HOST + S,
                                      last_correction_s=20e-6, error_bound_s=80e-6,
                                      frequency_ppm=1.5).encode(), S),
        (TOPICS.round, summary(7, entry).encode(), 2 * S),
    )  # fmt: skip
    snapshot = view.snapshot(3 * S)
    assert (snapshot["leader"], snapshot["term"], snapshot["round"]) == ("lab", 3, 7)
    assert (snapshot["fleet_asked"], snapshot["fleet_reported"]) == (10, 4)
    rows = {row["name"]: row for row in snapshot["participants"]}  # type: ignore[attr-defined]
    kmc = rows["KMC"]
    assert (kmc["offset_s"], kmc["delay_s"], kmc["excluded"]) == (-20e-6, 300e-6, False)
    assert kmc["error_bound_s"] == 80e-6
    assert kmc["last_seen_s"] == 2.0
    assert kmc["true_offset_from_leader_s"] == pytest.approx(30e-6)
    assert rows["lab"]["offset_s"] is None, "the leader has no row of its own in this round"


def test_true_offsets_are_read_against_the_leaders_truth_at_the_same_moment() -> None:
    def lab(offset_s: float, at: int) -> tuple[str, bytes, int]:
        master = status("lab", role=RoleKind.MASTER, host_offset_s=offset_s, host_time=at)
        return TOPICS.status("lab"), master.encode(), 0

    view = fed(
        (TOPICS.leader, Leader("lab", 3, HOST).encode(), 0),
        lab(0.5, HOST),
        lab(0.5001, HOST + S),  # running 100 ppm fast of the host
        (TOPICS.status("KMC"),
         status("KMC", host_offset_s=0.50015, host_time=HOST + S // 2).encode(), 0),
    )  # fmt: skip
    rows = {row["name"]: row for row in view.snapshot(0)["participants"]}  # type: ignore[attr-defined]
    assert rows["KMC"]["true_offset_from_leader_s"] == pytest.approx(100e-6)


def test_the_round_rate_comes_from_the_rounds_own_numbers_and_starts() -> None:
    view = fed((TOPICS.round, summary(1).encode(), 0))
    assert view.rounds_per_minute() is None
    for number in (2, 4):  # round 3's summary lost; they arrive at once
        view.handle(Inbound(TOPICS.round, summary(number).encode(), 0))
    assert view.rounds_per_minute() == pytest.approx(30.0), "a round every 2 s"
    view.handle(Inbound(TOPICS.round, summary(1, epoch=4).encode(), 0))
    assert view.rounds_per_minute() is None, "a new leader's rounds start afresh"


def test_a_deleted_status_forgets_its_participant() -> None:
    view = fed((TOPICS.status("KMC"), status("KMC").encode(), 0), (TOPICS.status("KMC"), b"", 1))
    assert view.snapshot(2)["participants"] == []


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (TOPICS.status("KMC"), b"{not json"),
        (TOPICS.status("KMC"), b'{"v": 1, "type": "status", "name": "KMC", "role": 5}'),
        (TOPICS.status("MIT"), status("KMC").encode()),  # a status for another name
        (TOPICS.round, b'{"v": 1, "type": "round", "spread_s": NaN}'),
        (TOPICS.leader, b"[]"),
    ],
)
def test_bad_messages_are_dropped_with_a_warning(
    topic: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        view = fed((topic, payload, 0))
    assert "dropped" in caplog.text
    snapshot = view.snapshot(1)
    assert (snapshot["participants"], snapshot["leader"], snapshot["round"]) == ([], None, None)


def test_durations_read_in_the_unit_that_suits_them() -> None:
    assert [duration(value) for value in (12.34e-6, -0.0042, 4.42, None)] == [
        "+12.3 µs",
        "-4.2 ms",
        "+4.420 s",
        "-",
    ]


def test_the_terminal_view_shows_every_participant() -> None:
    entry = RoundEntry("KMC", RoleKind.NODE, -20e-6, 300e-6, 20e-6, True)
    view = fed(
        (TOPICS.status("KMC"), status("KMC").encode(), 0),
        (TOPICS.status("MIT"), status("MIT", state=State.OFFLINE).encode(), 0),
        (TOPICS.round, summary(7, entry).encode(), 0),
    )
    text = as_text(view.snapshot(0))
    for shown in ("KMC", "MIT", "offline", "-20.0 µs", "yes"):
        assert shown in text
