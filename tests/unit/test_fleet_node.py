"""The fleet node's decisions, in-process: when and whom it asks, what it reports, which
results it applies and how far its clock then moves."""

import random
from collections.abc import Callable

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.nodes.fleet import FleetNode
from clocksync.protocol.envelope import Publish
from clocksync.protocol.messages import (
    FleetReport,
    FleetResult,
    FleetServer,
    FleetTick,
    TimeRequest,
    TimeResponse,
)
from clocksync.protocol.topics import Topics
from tests.unit.fakes import FakeTime, inbound, publishes

US = 1_000
MS = 1_000_000
EPOCH = 1_800_000_000_000
TOPICS = Topics("kitchen")
LEADER_AHEAD_S = 0.25
"""The leader's clock, these tests say, is this far ahead of the node's."""


def make_node(time: FakeTime) -> FleetNode:
    node = FleetNode(
        name="KMC",
        site="kitchen",
        clock=time.clock(),
        status_interval_s=10.0,
        rng=random.Random(1),
        random_bytes=lambda size: b"\x01" * size,
    )
    node.on_connect(time.mono)
    return node


def tick(
    node: FleetNode, time: FakeTime, round_: int, *, share: float = 1.0, **fields: object
) -> None:
    servers = fields.get("servers", ())
    assert isinstance(servers, tuple)
    message = FleetTick(
        str(fields.get("master", "lab")),
        int(str(fields.get("epoch", EPOCH))),
        round_,
        0.2,
        share,
        servers=servers,
    )
    node.on_message(inbound(TOPICS.fleet_tick, message, time.mono))


def ask(
    node: FleetNode,
    time: FakeTime,
    between: Callable[[int], None] | None = None,
    *,
    server: str = "lab",
) -> list[Publish]:
    """Let the window pass; the node's request is sent and answered 100 µs later by
    `server`, LEADER_AHEAD_S ahead; return what the node publishes after the answer.
    `between`, given the server's clock when it answered, runs before the answer comes."""
    time.advance(250 * MS)
    (request,) = [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]
    assert request.topic == TOPICS.fleet_ask(server, "KMC")
    assert not request.nudge, "a Cristian exchange: the answer comes unnudged"
    assert request.response_topic == TOPICS.fleet_answer("KMC")
    node.on_sent(request.tag, time.mono)
    sent = TimeRequest.decode(request.payload).sent
    ahead = round(LEADER_AHEAD_S * NS_PER_S)
    answer = TimeResponse(
        server, "KMC", EPOCH, sent, sent + ahead + 50 * US, 500.0, sent + ahead + 50 * US
    )
    time.advance(100 * US)
    if between is not None:
        between(answer.sent)
    message = inbound(
        TOPICS.fleet_answer("KMC"), answer, time.mono, correlation=request.correlation
    )
    return publishes(node.on_message(message))


def result(
    node: FleetNode,
    time: FakeTime,
    round_: int,
    average_s: float,
    *,
    master: str = "lab",
    applied: int | None = None,
    slewed: int | None = None,
    servers: tuple[FleetServer, ...] = (),
) -> None:
    message = FleetResult(master, EPOCH, round_, average_s, applied, slewed, servers)
    node.on_message(inbound(TOPICS.fleet_result, message, time.mono))


@pytest.mark.parametrize(
    ("applied_ms", "slewed_ms", "moved_s"),
    [
        (1, 2, LEADER_AHEAD_S + 0.010),  # answered before the leader took the average in
        (-2, -1, LEADER_AHEAD_S),  # answered once it had: its clock is the average already
        (-1, 1, None),  # answered while it was taking it in: nothing is sure
    ],
)
def test_a_result_that_comes_before_the_answer_is_applied_when_the_answer_comes(
    applied_ms: int, slewed_ms: int, moved_s: float | None
) -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    before = node.clock.now_ns()

    def round_closes(answered: int) -> None:
        applied, slewed = answered + applied_ms * MS, answered + slewed_ms * MS
        result(node, time, 1, 0.010, applied=applied, slewed=slewed)
        assert node.corrected == 0, "not before its own answer"

    assert ask(node, time, between=round_closes) == [], "too late to report"
    if moved_s is None:
        assert node.corrected == 0
        assert node.clock.now_ns() - before == 100 * US + 250 * MS
        return
    assert node.corrected == 1
    moved = (node.clock.now_ns() - before - 250 * MS - 100 * US) / NS_PER_S
    assert moved == pytest.approx(moved_s, abs=1e-5)


def test_a_tick_brings_one_ask_to_the_leader_within_the_window_and_a_report() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    early = [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]
    assert early == [], "it waits for the moment it drew"
    (report_message,) = ask(node, time)
    assert report_message.topic == TOPICS.fleet_report("KMC")
    report = FleetReport.decode(report_message.payload)
    assert (report.node, report.epoch, report.round, report.server) == ("KMC", EPOCH, 1, None)
    assert report.offset_s == pytest.approx(-LEADER_AHEAD_S, abs=1e-6)
    assert report.delay_s == pytest.approx(100e-6, abs=1e-6)


def test_with_no_share_a_node_measures_but_does_not_report() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1, share=0.0)
    assert ask(node, time) == []


def test_the_result_moves_the_clock_by_the_offset_measured_plus_the_average() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    ask(node, time)
    before = node.clock.now_ns()
    result(node, time, 1, 0.010)
    assert node.corrected == 1
    moved = (node.clock.now_ns() - before) / NS_PER_S
    assert moved == pytest.approx(LEADER_AHEAD_S + 0.010, abs=1e-5)  # a first update steps


def test_the_bound_covers_what_is_left_of_a_slew() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    ask(node, time)
    result(node, time, 1, 0.0)
    tick(node, time, 2)
    ask(node, time)  # the leader answers LEADER_AHEAD_S ahead again
    result(node, time, 2, 0.008 - LEADER_AHEAD_S)  # a move of 8 ms, slewed for 96 ms
    slewing = node.error_bound_s()
    assert slewing is not None
    assert 8e-3 < slewing < 8e-3 + 1e-3
    time.advance(100 * MS)
    slewed = node.error_bound_s()
    assert slewed is not None
    assert slewed < 1e-3


def test_results_not_awaited_move_nothing() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    ask(node, time)
    before = node.clock.adjusted_ns()
    result(node, time, 1, 0.5, master="mallory")  # not the leader followed
    result(node, time, 2, 0.5)  # a round it did not measure
    assert node.clock.adjusted_ns() == before
    result(node, time, 1, 0.0)
    adjusted = node.clock.adjusted_ns()
    result(node, time, 1, 0.0)  # replayed
    assert node.clock.adjusted_ns() == adjusted
    assert node.corrected == 1


def test_a_leader_of_a_lower_term_is_not_followed() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    tick(node, time, 2, master="old-lab", epoch=EPOCH - 1)
    assert node.leader_name() == "lab"


@pytest.mark.parametrize(
    "payload",
    [b"{", b"[]", b'{"v": 1, "type": "fleet-result", "master": "lab", "epoch": 1, '
     b'"round": 1, "average_s": NaN}', b"x" * 100_000],
)  # fmt: skip
def test_bad_input_on_every_topic_is_dropped(payload: bytes) -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    ask(node, time)
    before = node.clock.adjusted_ns()
    for topic in (
        TOPICS.fleet_tick,
        TOPICS.fleet_result,
        TOPICS.fleet_answer("KMC"),
        TOPICS.leader,
    ):
        node.on_message(inbound(topic, payload, time.mono))
    assert node.clock.adjusted_ns() == before
    assert node.corrected == 0


def test_a_node_asks_no_sooner_than_the_tick_says_the_leader_has_settled() -> None:
    time = FakeTime()
    node = make_node(time)
    message = FleetTick("lab", EPOCH, 1, 0.2, 1.0, settle_s=0.15)
    node.on_message(inbound(TOPICS.fleet_tick, message, time.mono))
    time.advance(149 * MS)
    assert not [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]
    time.advance(51 * MS)
    assert [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]


def test_a_wait_for_an_answer_gives_way_to_the_next_rounds_ask() -> None:
    time = FakeTime()
    node = make_node(time)
    tick(node, time, 1)
    time.advance(250 * MS)
    first = [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]
    assert len(first) == 1, "round 1's ask"
    time.advance(500 * MS)  # no answer, and less than the 2 s the node would wait
    assert [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic] == []
    tick(node, time, 2)
    time.advance(250 * MS)
    second = [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]
    assert len(second) == 1, "round 2 is asked at its moment, round 1 given up"
    sent = [TimeRequest.decode(ask.payload).sent for ask in (*first, *second)]
    assert sent[1] - sent[0] == 750 * MS, "a new request, at round 2's moment"


STANDBY_AHEAD_S = 0.050
"""The standby answering for the leader in these tests is this far ahead of the leader."""


def standby_answers(time: FakeTime, node: FleetNode) -> int:
    """Round 1 names lab-2 and lab-3 as the fleet's servers; the node asks one, which
    answers; return the node's clock before the round."""
    tick(node, time, 1, servers=("lab-2", "lab-3"))
    before = node.clock.now_ns()
    time.advance(250 * MS)
    (request,) = [p for p in publishes(node.on_timer(time.mono)) if "/ask/" in p.topic]
    server = request.topic.split("/")[-2]
    assert server in {"lab-2", "lab-3"}
    assert TimeRequest.decode(request.payload).round == 1, "a standby checks its round"
    node.on_sent(request.tag, time.mono)
    sent = TimeRequest.decode(request.payload).sent
    ahead = round(LEADER_AHEAD_S * NS_PER_S)
    answer = TimeResponse(
        server, "KMC", EPOCH, sent, sent + ahead + 50 * US, 500.0, sent + ahead + 50 * US
    )
    time.advance(100 * US)
    message = inbound(
        TOPICS.fleet_answer("KMC"), answer, time.mono, correlation=request.correlation
    )
    (report,) = [FleetReport.decode(p.payload) for p in publishes(node.on_message(message))]
    assert report.server == server, "its offset is from the standby's clock, and says so"
    return before


def measured_as(name: str, time: FakeTime) -> FleetServer:
    """The leader measured `name` STANDBY_AHEAD_S ahead, within 20 µs, 2 s before now."""
    leader_now = time.clock().now_ns()
    return FleetServer(name, STANDBY_AHEAD_S, 20e-6, leader_now - 2 * NS_PER_S, 2.0)


def test_an_answer_from_a_standby_counts_from_the_leader_by_the_standbys_measured_offset() -> None:
    time = FakeTime()
    node = make_node(time)
    before = standby_answers(time, node)
    bound_before = node.error_bound_s()
    servers = (measured_as("lab-2", time), measured_as("lab-3", time))
    result(node, time, 1, 0.010, servers=servers)
    assert node.corrected == 1
    moved = (node.clock.now_ns() - before - 250 * MS - 100 * US) / NS_PER_S
    assert moved == pytest.approx(LEADER_AHEAD_S - STANDBY_AHEAD_S + 0.010, abs=1e-5)
    bound = node.error_bound_s()
    assert bound_before is None
    assert bound is not None
    # θ's (50 µs of delay), the standby's offset's 20 µs, and 2 ppm over the 2 s between
    # the leader's measurement and the answer, and the standby's 50 ms apart.
    assert 50e-6 + 20e-6 + 2e-6 * 2.05 <= bound < 50e-6 + 20e-6 + 2e-6 * 2.05 + 10e-6


def test_an_answer_from_a_standby_the_result_does_not_measure_moves_nothing() -> None:
    time = FakeTime()
    node = make_node(time)
    before = standby_answers(time, node)
    result(node, time, 1, 0.010, servers=(measured_as("lab-9", time),))
    assert node.corrected == 0
    assert node.clock.now_ns() - before == 250 * MS + 100 * US
