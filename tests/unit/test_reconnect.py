"""When a link tries the broker again, and when it says so."""

from clocksync.transport.reconnect import (
    CAP_S,
    FIRST_S,
    LOG_EVERY_S,
    PERMANENT_S,
    Reconnect,
)


def test_retries_start_quick_double_to_a_short_cap_and_are_jittered() -> None:
    schedule = Reconnect(jitter=lambda: 1.0)
    assert [schedule.delay_s(permanent=False) for _ in range(5)] == [
        FIRST_S, 2 * FIRST_S, 4 * FIRST_S, CAP_S, CAP_S,
    ]  # fmt: skip
    low = Reconnect(jitter=lambda: 0.0)
    assert low.delay_s(permanent=False) == FIRST_S / 2
    assert CAP_S <= 1.0, "back within a one-second round of the broker's return"


def test_reaching_the_broker_restarts_the_schedule() -> None:
    schedule = Reconnect(jitter=lambda: 1.0)
    for _ in range(4):
        schedule.delay_s(permanent=False)
    schedule.reached()
    assert schedule.delay_s(permanent=False) == FIRST_S


def test_a_permanent_refusal_waits_long() -> None:
    assert Reconnect().delay_s(permanent=True) == PERMANENT_S


def test_three_quick_drops_in_a_row_look_like_a_takeover() -> None:
    schedule = Reconnect()
    assert not schedule.dropped(0.5)
    assert not schedule.dropped(60.0), "a long-lived connection resets the count"
    assert not schedule.dropped(0.5)
    assert not schedule.dropped(1.0)
    assert schedule.dropped(2.0)


def test_the_same_failure_is_logged_once_a_while() -> None:
    schedule = Reconnect()
    assert schedule.worth_logging("refused", 0.0)
    assert not schedule.worth_logging("refused", 1.0)
    assert schedule.worth_logging("another reason", 2.0)
    assert schedule.worth_logging("another reason", 2.0 + LOG_EVERY_S)
