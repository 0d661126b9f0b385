"""A Cristian client's outstanding requests: an answer matches one request, once, in time."""

from clocksync.nodes.requests import (
    ANSWERED_BY_ANOTHER,
    REMEMBERED_ANSWERS,
    Outstanding,
    PendingRequests,
)


def test_pending_matches_correlation_and_echo_once() -> None:
    pending = PendingRequests()
    pending.add(b"a", Outstanding(echo=111, sent_mono=1000, deadline_mono=2000))
    assert "echoed send time" in str(pending.take(b"a", 112, 1500, "bank"))
    assert len(pending) == 1, "a forged echo must not cancel the genuine answer"
    assert pending.take(b"a", 111, 1500, "bank") == Outstanding(111, 1000, 2000)
    assert "no outstanding request" in str(pending.take(b"a", 111, 1500, "bank"))
    assert "no outstanding request" in str(pending.take(b"zz", 111, 1500, "bank"))


def test_pending_refuses_late_answers_and_expires() -> None:
    pending = PendingRequests()
    pending.add(b"late", Outstanding(1, 0, 100))
    assert "timed out" in str(pending.take(b"late", 1, 101, "bank"))
    pending.add(b"lost", Outstanding(2, 0, 100))
    pending.add(b"young", Outstanding(3, 50, 500))
    assert pending.expire(200) == 1
    assert len(pending) == 1
    assert isinstance(pending.take(b"young", 3, 300, "bank"), Outstanding)


def test_the_round_trip_and_deadline_count_from_when_the_request_left() -> None:
    pending = PendingRequests()
    pending.add(b"r", Outstanding(echo=5, sent_mono=1000, deadline_mono=1500))
    assert pending.next_deadline() == 1500
    pending.left_at(b"r", 1040)
    assert pending.next_deadline() == 1540
    pending.left_at(b"unknown", 9999)
    assert pending.take(b"r", 5, 1520, "bank") == Outstanding(5, 1040, 1540)
    assert pending.next_deadline() is None


def test_a_second_servers_answer_is_told_apart_from_a_replay() -> None:
    pending = PendingRequests()
    pending.add(b"a", Outstanding(echo=1, sent_mono=0, deadline_mono=100))
    assert isinstance(pending.take(b"a", 1, 50, "bank"), Outstanding)
    assert pending.take(b"a", 1, 60, "bank-2") == ANSWERED_BY_ANOTHER
    assert "no outstanding request" in str(pending.take(b"a", 1, 60, "bank")), "a replay"
    assert "no outstanding request" in str(pending.take(b"b", 1, 60, "bank-2"))
    for index in range(REMEMBERED_ANSWERS):
        key = f"k{index}".encode()
        pending.add(key, Outstanding(echo=1, sent_mono=0, deadline_mono=100))
        pending.take(key, 1, 50, "bank")
    assert pending.take(b"a", 1, 60, "bank-2") != ANSWERED_BY_ANOTHER, "forgotten in time"
    assert pending.take(b"k1", 1, 60, "bank-2") == ANSWERED_BY_ANOTHER
