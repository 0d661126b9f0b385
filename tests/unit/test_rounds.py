"""A Berkeley round without I/O: collecting replies, settling, membership."""

from dataclasses import replace

import pytest

from clocksync.core.measurement import Exchange
from clocksync.core.sample import Sample
from clocksync.master.rounds import RoundCollector, RoundPlan, average_bound, move_for, settle
from clocksync.protocol.enums import RoleKind
from clocksync.protocol.messages import PreviousSend, Reply

MS = 1_000_000
T0 = 1_800_000_000 * 10**9


def reply(
    node: str, seq: int, received: int, sent: int, *, epoch: int = 9, number: int = 4
) -> Reply:
    return Reply(node, epoch, number, seq, received, sent)


def collector_with_polls(count: int, nodes: tuple[str, ...] = ("KMC",)) -> RoundCollector:
    collector = RoundCollector("lab", 9, 4, nodes, samples=count)
    for _ in range(count * len(nodes)):
        node, seq = collector.next_poll()
        collector.poll_sent(node, seq, T0 + seq * 10 * MS)
    return collector


def test_keeps_each_nodes_lowest_delay_exchange() -> None:
    collector = collector_with_polls(3)
    # KMC is 5 ms ahead; poll 1 took 4 ms there and back, poll 2 only 1 ms.
    assert collector.add_reply(reply("KMC", 0, T0 + 8 * MS, T0 + 8 * MS), T0 + 6 * MS) is None
    assert collector.add_reply(reply("KMC", 1, T0 + 17 * MS, T0 + 17 * MS), T0 + 14 * MS) is None
    assert (
        collector.add_reply(reply("KMC", 2, T0 + 25_500_000, T0 + 25_500_000), T0 + 21 * MS) is None
    )
    best = collector.best_samples()
    assert best["KMC"].seq == 2
    assert best["KMC"].exchange.offset_s == pytest.approx(0.005)
    assert best["KMC"].exchange.delay_s == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (reply("KMC", 0, T0, T0, number=3), "late or foreign"),
        (reply("KMC", 0, T0, T0, epoch=8), "late or foreign"),
        (reply("KMC", 5, T0, T0), "not sent"),
        (reply("lab", 0, T0, T0), "not sent to lab"),
        (reply("KMC", 0, T0 + 5, T0), "before"),
    ],
)
def test_refuses_replies_that_answer_no_poll_of_this_round(bad: Reply, why: str) -> None:
    collector = collector_with_polls(2)
    refusal = collector.add_reply(bad, T0 + MS)
    assert refusal is not None
    assert why in refusal
    assert collector.best_samples() == {}


def test_refuses_a_duplicate_reply() -> None:
    collector = collector_with_polls(1)
    assert collector.add_reply(reply("KMC", 0, T0, T0), T0 + MS) is None
    refusal = collector.add_reply(reply("KMC", 0, T0 - MS, T0 - MS), T0 + MS)
    assert refusal is not None
    assert "duplicate" in refusal
    assert collector.best_samples()["KMC"].exchange.t2 == T0


def sample(offset_ms: float, delay_ms: float = 1.0) -> Sample:
    half = round(delay_ms * MS / 2)
    shift = round(offset_ms * MS)
    return Sample(Exchange(T0, T0 + half + shift, T0 + half + shift, T0 + 2 * half))


def test_settle_includes_the_master_and_corrects_everyone_to_the_average() -> None:
    outcome = settle("lab", {"KMC": sample(12.0), "MIT": sample(-6.0)}, min_window_s=0.002)
    assert outcome.selection.average_s == pytest.approx(0.002)
    assert outcome.corrections == pytest.approx({"lab": 0.002, "KMC": -0.010, "MIT": 0.008})
    assert outcome.spread_s == pytest.approx(0.018)
    rows = {row.name: row for row in outcome.entries}
    assert rows["lab"].role == RoleKind.MASTER
    assert rows["lab"].offset_s == 0.0
    assert rows["KMC"].delay_s == pytest.approx(0.001)
    assert not any(row.excluded for row in outcome.entries)


def test_once_acquired_the_site_follows_an_average_only_as_far_as_it_is_known() -> None:
    """The same small average moves a site on a quick path part of the way, on a slow one
    hardly at all; a far one beyond its bound, all the way; a starting site, always."""
    quick = {"KMC": sample(0.030, delay_ms=0.04), "MIT": sample(0.030, delay_ms=0.04)}
    slow = {"KMC": sample(0.030, delay_ms=11.0), "MIT": sample(0.030, delay_ms=11.0)}
    far = {"KMC": sample(1.5, delay_ms=0.04), "MIT": sample(2.0, delay_ms=0.04)}
    average = 0.020e-3
    assert settle("lab", quick, min_window_s=0.002).move_s == pytest.approx(average)
    quick_move = settle("lab", quick, min_window_s=0.002, acquiring=False).move_s
    assert 0.1 * average < quick_move < 0.5 * average
    slow_move = settle("lab", slow, min_window_s=0.002, acquiring=False).move_s
    assert 0 < slow_move < 1e-4 * average
    far_outcome = settle("lab", far, min_window_s=0.002, acquiring=False)
    moved = 0.0035 / 3
    assert far_outcome.move_s == pytest.approx(moved)
    assert far_outcome.corrections == pytest.approx(
        {"lab": moved, "KMC": moved - 0.0015, "MIT": moved - 0.002}
    )


def test_a_site_never_moves_by_more_than_its_measurements_can_show() -> None:
    """Replies held for an ACK: each offset honest within its half-delay, the average a few
    milliseconds and within its bound.  Following it in full walked the site's time by
    milliseconds a round."""
    held = {"KMC": sample(-5.5, delay_ms=11.0), "MIT": sample(-5.0, delay_ms=11.0)}
    assert abs(average_bound(held, settle("lab", held, min_window_s=0.002).selection)) > 0.003
    assert abs(move_for(-0.0035, 0.0037, acquiring=False)) < 1e-7


def test_settle_excludes_a_node_an_hour_off() -> None:
    samples = {"KMC": sample(1.0), "MIT": sample(-2.0), "SOLS": sample(3_600_000.0)}
    outcome = settle("lab", samples, min_window_s=0.002)
    assert outcome.selection.excluded == {"SOLS"}
    assert outcome.corrections["lab"] == pytest.approx(-0.001 / 3)
    assert outcome.corrections["SOLS"] == pytest.approx(-3600.0, abs=0.01)


def test_a_round_knows_who_answered() -> None:
    collector = collector_with_polls(2, ("KMC", "MIT", "SOLS"))
    assert collector.add_reply(reply("MIT", 1, T0 + 11 * MS, T0 + 11 * MS), T0 + 12 * MS) is None
    assert collector.answered() == {"MIT"}


def test_probes_are_polled_once_and_first() -> None:
    collector = RoundCollector("lab", 9, 4, ("KMC", "MIT"), samples=2, probes=("ghost",))
    polls = [collector.next_poll() for _ in range(collector.polls_due)]
    assert polls == [("ghost", 0), ("KMC", 0), ("MIT", 0), ("KMC", 1), ("MIT", 1)]


def test_refuses_a_reply_to_a_poll_sent_to_another_node() -> None:
    collector = collector_with_polls(1, ("KMC", "MIT"))
    refusal = collector.add_reply(reply("TAPMI", 0, T0, T0), T0 + MS)
    assert refusal is not None
    assert "not sent to TAPMI" in refusal


def test_refuses_replies_to_a_poll_whose_send_time_is_unknown() -> None:
    collector = RoundCollector("lab", 9, 4, ["KMC"])
    collector.poll_sent(*collector.next_poll(), None)
    assert collector.polls_sent == 1
    refusal = collector.add_reply(reply("KMC", 0, T0, T0), T0 + MS)
    assert refusal is not None
    assert "unknown" in refusal


def test_round_plan_defaults_close_at_half_the_interval_at_most_two_seconds() -> None:
    assert RoundPlan().timeout_s == 0.5
    assert RoundPlan(interval_s=60).timeout_s == 2.0
    assert RoundPlan(interval_s=60, reply_timeout_s=10).timeout_s == 10


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"interval_s": 0}, "interval"),
        ({"interval_s": float("nan")}, "interval"),
        ({"samples": 0}, "from 1 to 64"),
        ({"samples": 65}, "from 1 to 64"),
        ({"reply_timeout_s": 2.0}, "at most the interval"),
        ({"min_window_s": 0}, "window"),
    ],
)
def test_round_plan_rejects_nonsense(settings: dict[str, float], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        RoundPlan(**settings)  # type: ignore[arg-type]


def test_a_precise_send_time_replaces_the_early_one_and_is_preferred() -> None:
    collector = collector_with_polls(3)
    # KMC is 5 ms ahead; poll 0's reply was stamped 2 ms before it really left.
    assert collector.add_reply(reply("KMC", 0, T0 + 6 * MS, T0 + 6 * MS), T0 + 4 * MS) is None
    best = collector.best_samples()["KMC"]
    assert best.exchange.offset_s == pytest.approx(0.004)
    # Poll 1's reply is quicker but carries no follow-up of its own.
    quick = reply("KMC", 1, T0 + 15_500_000, T0 + 15_500_000)
    follow_up = replace(quick, previous=PreviousSend(0, T0 + 8 * MS))
    assert collector.add_reply(follow_up, T0 + 10_600_000) is None
    best = collector.best_samples()["KMC"]
    assert best.seq == 0
    assert best.exchange.t3 == T0 + 8 * MS
    assert best.exchange.offset_s == pytest.approx(0.005)


@pytest.mark.parametrize("sent", [T0 + 5 * MS, T0 + 30 * MS])
def test_a_follow_up_out_of_order_is_refused(sent: int) -> None:
    collector = collector_with_polls(2)
    assert collector.add_reply(reply("KMC", 0, T0 + 6 * MS, T0 + 6 * MS), T0 + 4 * MS) is None
    late = replace(reply("KMC", 1, T0 + 16 * MS, T0 + 16 * MS), previous=PreviousSend(0, sent))
    refusal = collector.add_reply(late, T0 + 14 * MS)
    assert refusal is not None
    assert "out of order" in refusal
    assert collector.best_samples()["KMC"].exchange.t3 == T0 + 6 * MS


def test_a_follow_up_for_a_reply_never_heard_is_ignored() -> None:
    collector = collector_with_polls(2)
    orphan = replace(reply("KMC", 1, T0 + 16 * MS, T0 + 16 * MS), previous=PreviousSend(0, T0))
    assert collector.add_reply(orphan, T0 + 14 * MS) is None
    assert collector.best_samples()["KMC"].seq == 1


def test_polls_go_to_every_node_before_any_node_gets_its_next_sample() -> None:
    collector = RoundCollector("lab", 9, 4, ["SOLS", "KMC", "MIT"], samples=2)
    order = []
    for _ in range(6):
        node, seq = collector.next_poll()
        collector.poll_sent(node, seq, T0)
        order.append((node, seq))
    assert order == [
        ("KMC", 0),
        ("MIT", 0),
        ("SOLS", 0),
        ("KMC", 1),
        ("MIT", 1),
        ("SOLS", 1),
    ]


def test_polls_are_paced_over_most_of_the_reply_timeout() -> None:
    plan = RoundPlan(interval_s=1.0, samples=8)
    assert plan.poll_pace_s(32) == pytest.approx(0.8 * 0.5 / 32)
