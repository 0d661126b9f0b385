"""The Berkeley node's decisions, in-process: which polls it answers and how, which
corrections it applies and how far its clock then moves."""

import json

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.nodes.berkeley import BerkeleyNode, ReplySent
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.messages import Correction, Leader, Poll, PreviousSend, Reply, Status
from clocksync.protocol.topics import Topics
from tests.unit.fakes import FakeTime, inbound, publishes, wake_of

US = 1_000
EPOCH = 1_800_000_000_000
TOPICS = Topics("kitchen")


def make_node(time: FakeTime, offset_s: float = 0.0) -> BerkeleyNode:
    node = BerkeleyNode(
        name="KMC", site="kitchen", clock=time.clock(offset_s=offset_s), status_interval_s=1.0
    )
    node.on_connect(time.mono)
    return node


def poll(
    node: BerkeleyNode, time: FakeTime, round_: int, seq: int, **fields: object
) -> list[Reply]:
    """Deliver a poll that arrived 40 µs ago; the replies the node sends, reported sent."""
    message = Poll(
        str(fields.get("master", "lab")),
        str(fields.get("node", "KMC")),
        int(str(fields.get("epoch", EPOCH))),
        round_,
        seq,
    )
    topic = str(fields.get("topic", TOPICS.poll("KMC")))
    actions = node.on_message(inbound(topic, message, time.mono - 40 * US))
    replies = []
    for publish in publishes(actions):
        assert publish.topic == TOPICS.reply("KMC")
        assert isinstance(publish.tag, ReplySent)
        assert publish.nudge, "the broker woken for the reply as for the poll"
        time.advance(15 * US)  # the reply leaves a little after it was stamped
        node.on_sent(publish.tag, time.mono)
        replies.append(Reply.decode(publish.payload))
    return replies


def correct(node: BerkeleyNode, time: FakeTime, round_: int, seq: int, seconds: float) -> None:
    message = Correction("lab", "KMC", EPOCH, round_, seq, seconds)
    node.on_message(inbound(TOPICS.correction("KMC"), message, time.mono))


def test_a_poll_is_answered_with_its_arrival_and_the_reply_stamp() -> None:
    time = FakeTime()
    node = make_node(time, offset_s=2.0)
    arrival = time.mono - 40 * US
    (reply,) = poll(node, time, 1, 0)
    assert reply.node == "KMC"
    assert (reply.epoch, reply.round, reply.seq) == (EPOCH, 1, 0)
    assert reply.received == node.clock.reading_at(arrival)
    assert reply.sent == node.clock.reading_at(time.mono - 15 * US)
    assert reply.previous is None


def test_each_reply_carries_when_the_previous_one_really_left() -> None:
    time = FakeTime()
    node = make_node(time)
    (first,) = poll(node, time, 1, 0)
    left = node.clock.reading_at(time.mono)
    time.advance(1_000 * US)
    (second,) = poll(node, time, 1, 1)
    assert second.previous == PreviousSend(0, left)
    assert left > first.sent, "the precise send time is later than the stamp in the payload"
    (next_round,) = poll(node, time, 2, 0)
    assert next_round.previous is None, "a new round starts afresh"


def test_a_node_listens_and_answers_only_under_its_own_name() -> None:
    time = FakeTime()
    node = make_node(time)
    assert node.subscriptions() == [TOPICS.poll("KMC"), TOPICS.correction("KMC"), TOPICS.leader]
    forged = Poll("lab", "MIT", EPOCH, 1, 0)  # speaks for another node than its topic
    assert publishes(node.on_message(inbound(TOPICS.poll("KMC"), forged, time.mono))) == []


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"v": 1, "type": "poll", "round": NaN}', b"{" * 50_000, b"\x00\xff" * 3000],
)
def test_a_bad_poll_is_dropped(payload: bytes, caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    node = make_node(time)
    assert publishes(node.on_message(inbound(TOPICS.poll("KMC"), payload, time.mono))) == []
    assert "dropped a bad poll" in caplog.text


def test_a_poll_that_arrived_before_a_step_is_not_answered() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    correct(node, time, 1, 0, 5.0)  # stepped: 5 s is over the step threshold
    assert poll(node, time, 2, 0) == [], "its timestamps would straddle the step"
    time.advance(100 * US)
    assert len(poll(node, time, 2, 1)) == 1


def test_corrected_rounds_are_not_answered_again() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 5, 0)
    correct(node, time, 5, 0, 0.001)
    assert poll(node, time, 5, 1) == [], "the round is already corrected"
    assert poll(node, time, 4, 0) == [], "and so is every round before it"
    assert len(poll(node, time, 6, 0)) == 1


def test_a_poll_is_answered_once() -> None:
    time = FakeTime()
    node = make_node(time)
    assert len(poll(node, time, 1, 0)) == 1
    time.advance(20_000 * US)
    assert poll(node, time, 1, 0) == [], "a replay or a duplicate delivery"
    (second,) = poll(node, time, 1, 1)
    assert second.previous is not None
    assert second.previous.seq == 0, "the replay did not overwrite the precise send time"


def test_a_poll_from_the_far_future_does_not_make_real_rounds_stale() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 2**63 - 1, 0)
    assert len(poll(node, time, 7, 0)) == 1
    correct(node, time, 7, 0, 0.001)
    assert node.clock.updates == 1


def test_a_flood_of_polls_keeps_memory_bounded() -> None:
    time = FakeTime()
    node = make_node(time)
    for round_ in range(1, 50):
        for seq in range(0, 300, 7):
            poll(node, time, round_, seq)
    assert len(node.follower._rounds) <= 4
    assert all(len(r.at_reply) <= 256 for r in node.follower._rounds.values())
    assert poll(node, time, 60, 256) == [], "no more polls a round than any master sends"


def test_a_node_follows_one_leader_and_a_newer_term_fences_off_the_old() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    assert node.leader == ("lab", EPOCH)
    assert poll(node, time, 1, 0, master="x", epoch=EPOCH) == [], "another master, same term"
    assert len(poll(node, time, 1, 0, master="lab-2", epoch=EPOCH + 1)) == 1, "a new leader"
    assert node.leader == ("lab-2", EPOCH + 1)
    assert poll(node, time, 2, 0) == [], "the deposed leader is fenced off"
    correct(node, time, 1, 0, 0.002)  # the deposed leader's correction
    assert node.clock.updates == 0


def test_a_leader_record_names_whom_to_follow() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    record = Leader("lab-2", EPOCH + 5, time.wall)
    node.on_message(inbound(TOPICS.leader, record, time.mono))
    assert node.leader == ("lab-2", EPOCH + 5)
    assert poll(node, time, 2, 0) == []
    far = Leader("mallory", time.wall // 1_000_000 + 10 * 86_400_000, time.wall)
    node.on_message(inbound(TOPICS.leader, far, time.mono))
    assert node.leader == ("lab-2", EPOCH + 5), "a term days ahead is not believed"


def test_a_node_follows_anyone_once_its_leader_falls_silent() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0, epoch=EPOCH + 9)
    time.advance(11 * NS_PER_S)  # the leader fell silent, and the new one's term is lower
    assert len(poll(node, time, 1, 0)) == 1
    assert node.leader == ("lab", EPOCH)


def test_a_foreign_masters_poll_and_correction_move_nothing() -> None:
    """Issue 8, defect 1: a poll and a correction from a made-up master stepped a line."""
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    poll(node, time, 1, 0, master="x", epoch=1)
    forged = Correction("x", "KMC", 1, 1, 0, 3600.0)
    node.on_message(inbound(TOPICS.correction("KMC"), forged, time.mono))
    assert node.clock.updates == 0
    assert node.clock.now_ns() == time.wall


def test_in_service_a_correction_beyond_the_maximum_change_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    node = make_node(time)
    for round_ in range(1, 4):  # the first updates may be of any size
        poll(node, time, round_, 0)
        correct(node, time, round_, 0, 2.0 if round_ == 1 else 0.0)
        time.advance(NS_PER_S)
    assert node.clock.updates == 3
    assert node.clock.now_ns() - time.wall == 2 * NS_PER_S
    for round_, seconds in ((4, 3600.0), (5, -3600.0), (6, 1e9)):
        poll(node, time, round_, 0)
        correct(node, time, round_, 0, seconds)
        time.advance(NS_PER_S)
    assert node.clock.now_ns() - time.wall == 2 * NS_PER_S
    assert "more than the maximum change of 1 s" in caplog.text
    assert node.follower.corrected == 3
    poll(node, time, 7, 0)
    correct(node, time, 7, 0, 0.5)  # within the maximum change: taken into the history
    assert node.follower.corrected == 4
    time.advance(NS_PER_S)
    assert 2 * NS_PER_S < node.clock.now_ns() - time.wall <= 2_500_000_000


def test_no_correction_takes_the_clock_past_what_the_wire_can_write() -> None:
    """Issue 8, defect 2: +1e9 s corrections took a clock past the year 9999."""
    time = FakeTime()
    node = BerkeleyNode(
        name="KMC",
        site="kitchen",
        clock=time.clock(offset_s=251_500_000_000.0, first_updates=100),
        status_interval_s=1.0,
    )
    node.on_connect(time.mono)
    for round_ in range(1, 20):
        poll(node, time, round_, 0)
        correct(node, time, round_, 0, 1e9)
    assert node.clock.now_ns() < 253_402_300_800 * NS_PER_S
    assert len(poll(node, time, 30, 0)) == 1, "and it keeps answering"
    publishes(node.on_timer(time.mono + 10 * NS_PER_S))


def test_a_correction_lands_where_the_master_meant_despite_slewing_since() -> None:
    time = FakeTime()
    node = make_node(time, offset_s=0.0)
    poll(node, time, 1, 0)
    poll(node, time, 1, 1)
    correct(node, time, 1, 1, 0.010)  # slewed at 83,333 ppm: 120 ms to complete
    time.advance(NS_PER_S // 2)
    assert node.clock.now_ns() - time.wall == 10_000_000
    poll(node, time, 2, 0)
    correct(node, time, 2, 0, 0.0)
    assert node.clock.now_ns() - time.wall == 10_000_000, "what was slewed is not undone"


def test_a_correction_measured_during_a_slew_counts_what_was_slewed_since() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    correct(node, time, 1, 0, 0.050)  # a 50 ms slew begins
    time.advance(10 * 1_000 * US)
    answered_at = node.clock.adjusted_ns()  # the reply is stamped at this instant
    poll(node, time, 2, 0)  # answered 10 ms into the slew: about 0.83 ms slewed so far
    time.advance(20 * 1_000 * US)
    slewed_since = node.clock.adjusted_ns() - answered_at
    correct(node, time, 2, 0, 0.002)
    time.advance(NS_PER_S)
    assert node.clock.adjusted_ns() == answered_at + 2_000_000
    assert slewed_since > 0


@pytest.mark.parametrize(
    ("round_", "seq", "epoch", "master"),
    [
        (2, 0, EPOCH, "lab"),  # a round this node is not in
        (1, 3, EPOCH, "lab"),  # a poll it never answered
        (1, 0, EPOCH + 1, "lab"),  # another incarnation of the master
        (1, 0, EPOCH, "rogue"),  # another master
    ],
)
def test_a_correction_not_awaited_moves_nothing(
    round_: int, seq: int, epoch: int, master: str, caplog: pytest.LogCaptureFixture
) -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    message = Correction(master, "KMC", epoch, round_, seq, 3600.0)
    node.on_message(inbound(TOPICS.correction("KMC"), message, time.mono))
    assert node.clock.updates == 0
    assert node.clock.now_ns() == time.wall
    assert "not one awaited" in caplog.text


def test_a_second_correction_for_a_round_is_refused() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    correct(node, time, 1, 0, 0.001)
    correct(node, time, 1, 0, 5.0)
    assert node.clock.updates == 1
    time.advance(NS_PER_S)
    assert node.clock.now_ns() - time.wall == 1_000_000


def test_corrections_for_another_node_or_malformed_are_dropped() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    foreign = Correction("lab", "MIT", EPOCH, 1, 0, 5.0)
    node.on_message(inbound(TOPICS.correction("KMC"), foreign, time.mono))
    raw = json.dumps({"v": 1, "type": "correction", "correction_s": "5"}).encode()
    node.on_message(inbound(TOPICS.correction("KMC"), raw, time.mono))
    assert node.clock.updates == 0


def test_status_online_on_connect_offline_as_will_and_goodbye() -> None:
    time = FakeTime()
    node = BerkeleyNode(
        name="KMC", site="kitchen", clock=time.clock(offset_s=0.25), status_interval_s=2.0
    )
    actions = node.on_connect(time.mono)
    (online,) = publishes(actions)
    assert (online.topic, online.retain, online.qos) == (TOPICS.status("KMC"), True, 1)
    status = Status.decode(online.payload)
    assert (status.role, status.state) == (RoleKind.NODE, State.ONLINE)
    assert status.sync == SyncMode.BERKELEY
    assert status.host_offset_s == pytest.approx(0.25)
    assert wake_of(actions) == time.mono + 2 * NS_PER_S
    will = Status.decode(node.will().payload)
    assert will.state == State.OFFLINE
    assert will.host_offset_s is None
    (goodbye,) = node.goodbye()
    assert Status.decode(goodbye.payload).host_offset_s == pytest.approx(0.25)


def test_status_follows_a_correction_once_its_slew_is_done() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    correct(node, time, 1, 0, 0.001)
    slew_end = node.clock.slew_end_mono()
    assert slew_end is not None
    actions = node.on_message(inbound(TOPICS.poll("KMC"), b"x", time.mono))
    assert wake_of(actions) == slew_end
    time.mono = slew_end
    (status,) = publishes(node.on_timer(time.mono))
    assert Status.decode(status.payload).last_correction_s == pytest.approx(0.001)


def test_after_a_refused_forgery_the_genuine_correction_still_applies() -> None:
    time = FakeTime()
    node = make_node(time)
    for round_ in range(1, 4):
        poll(node, time, round_, 0)
        correct(node, time, round_, 0, 0.0)
        time.advance(NS_PER_S)
    poll(node, time, 4, 0)
    correct(node, time, 4, 0, 3600.0)  # forged, and refused
    assert node.follower.corrected == 3
    correct(node, time, 4, 0, 0.000_010)  # the master's, filtered through the history
    assert node.follower.corrected == 4
    time.advance(NS_PER_S)
    assert 0 < node.clock.now_ns() - time.wall <= 10_000


def test_a_clock_may_answer_for_the_leader_only_in_a_round_it_is_steady_in() -> None:
    """What a standby master checks before it answers a fleet node's ask in the leader's
    name: the leader measures it by the round's polls, so its clock must not move in
    between (see clocksync.nodes.fleet)."""
    time = FakeTime()
    node = make_node(time)
    follower = node.follower
    assert follower.refusal_to_answer(1) == "not corrected by the leader yet"
    poll(node, time, 1, 0)
    correct(node, time, 1, 0, 20e-6)
    assert follower.refusal_to_answer(2) == "its clock is slewing"
    time.advance(1_000 * US)  # 20 µs slew in well under a millisecond
    assert follower.refusal_to_answer(2) is None
    assert follower.refusal_to_answer(1) == "its clock is in round 2"
    assert follower.refusal_to_answer(3) == "its clock is in round 2"
    poll(node, time, 2, 0)
    assert follower.refusal_to_answer(2) is None, "polled while steady"
    correct(node, time, 2, 0, 1e-3)
    poll(node, time, 3, 0)  # polled while 1 ms is still being slewed in
    time.advance(100_000 * US)
    assert node.clock.slew_end_mono() is None
    assert follower.refusal_to_answer(3) == "its clock was slewing when polled in the round"


def test_a_reply_says_how_far_the_node_has_been_steered() -> None:
    time = FakeTime()
    node = make_node(time)
    poll(node, time, 1, 0)
    correct(node, time, 1, 0, 0.0005)
    time.advance(NS_PER_S)
    (reply,) = poll(node, time, 2, 0)
    assert reply.adjusted_s == pytest.approx(0.0005, abs=1e-9)


def test_a_node_follows_the_masters_steering_exactly_and_at_its_rate() -> None:
    """The master moves by 20 µs each round and runs 30 ppm fast: the node's clock, its
    own rate true, needs exactly that; its history's line, less the master's steering, is
    flat, and between rounds it runs at the master's rate, not its own."""
    time = FakeTime()
    node = make_node(time)
    master_ns = 0  # the master's total adjustment
    for number in range(1, 12):
        poll(node, time, number, 0)
        needed = master_ns - node.clock.adjusted_ns()
        time.advance(NS_PER_S // 2)  # the round ends: the master moves, and the correction comes
        moved = 20_000 + 15_000  # its move, and half a second at 30 ppm
        message = Correction(
            "lab", "KMC", EPOCH, number, 0, (needed + 20_000) / NS_PER_S, 40e-6,
            (master_ns + 20_000) / NS_PER_S, (master_ns + moved) / NS_PER_S, 30.0,
        )  # fmt: skip
        node.on_message(inbound(TOPICS.correction("KMC"), message, time.mono))
        master_ns += moved + 15_000  # and the next half second
        time.advance(NS_PER_S // 2)
    assert node.clock.frequency_ppm == pytest.approx(30.0, abs=0.01)
    line = node.tracking.line()
    assert line is not None
    assert abs(line.slope) < 1e-9
    assert node.clock.adjusted_ns() == pytest.approx(master_ns, abs=100)


def test_a_correction_taken_as_measured_allows_for_the_rate_learnt_with_it() -> None:
    """The third measurement gives the first line: the clock ran at its old rate since it
    was measured, and needed the new one: the correction it takes makes up the difference
    (a fleet node measured a second before its result came was off by 100 µs)."""
    time = FakeTime()
    node = make_node(time)
    for number in (1, 2, 3):
        poll(node, time, number, 0)
        answered = time.mono
        needed = number * 100_000 - node.clock.adjusted_ns()  # 100 ppm slow
        time.advance(NS_PER_S // 2)
        correct(node, time, number, 0, needed / NS_PER_S)
        assert node.clock.frequency_ppm == (0.0 if number < 3 else pytest.approx(100, abs=1))
        time.advance(NS_PER_S // 2)
    truth = 3 * 100_000 + 100e-6 * (time.mono - answered)
    assert node.clock.adjusted_ns() == pytest.approx(truth, abs=500)
