"""Warnings about bad input are rate-limited, not lost silently."""

import logging

from clocksync.app.logs import WarningThrottle


def record(msg: str, *args: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("clocksync.x", level, __file__, 1, msg, args or None, None)


def test_lets_a_burst_through_then_holds_back_and_reports_the_count() -> None:
    now = [0.0]
    throttle = WarningThrottle(burst=3, window_s=10, monotonic=lambda: now[0])
    passed = [throttle.filter(record("dropped a bad poll: %s", f"reason {n}")) for n in range(8)]
    assert passed == [True, True, True, False, False, False, False, False]
    assert throttle.filter(record("another kind of warning"))
    now[0] = 10.5
    later = record("dropped a bad poll: %s", "reason 8")
    assert throttle.filter(later)
    assert "5 more like this in the last 10 s, the latest: dropped a bad poll: reason 7" in (
        later.getMessage()
    )
    assert throttle.filter(record("dropped a bad poll: %s", "reason 9"))


def test_never_holds_back_information() -> None:
    throttle = WarningThrottle(burst=1, window_s=60, monotonic=lambda: 0.0)
    assert all(throttle.filter(record("round %d", "1", level=logging.INFO)) for _ in range(100))
