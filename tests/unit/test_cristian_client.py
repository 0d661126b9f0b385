"""The Cristian client's decisions, in-process: what it asks, which answers it accepts, what
a burst keeps, and how a Cristian node corrects its clock."""

import logging

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.nodes.asker import REQUEST_EXPIRY_S, Asker, Burst, Inquirer, RequestSent
from clocksync.nodes.cristian import CristianNode
from clocksync.protocol.enums import MqttVersion, RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Status, TimeRequest, TimeResponse
from clocksync.protocol.topics import Topics
from tests.unit.fakes import FakeTime, inbound, publishes, wake_of

US = 1_000
TOPICS = Topics("bank")
REPLY = TOPICS.cristian_reply("phone")


class Server:
    """A server `offset_ns` ahead of the host, `one_way_ns` from the client each way, that
    holds each request `hold_ns`."""

    def __init__(self, offset_ns: int, one_way_ns: int = 60 * US, hold_ns: int = 20 * US) -> None:
        self.offset_ns = offset_ns
        self.one_way_ns = one_way_ns
        self.hold_ns = hold_ns

    def answer(self, time: FakeTime, request: Publish, **changes: object) -> Inbound:
        """Answer `request`, sent now, advancing time to the answer's arrival."""
        asked = TimeRequest.decode(request.payload)
        time.advance(self.one_way_ns)
        t2 = time.wall + self.offset_ns
        time.advance(self.hold_ns)
        t3 = time.wall + self.offset_ns
        time.advance(self.one_way_ns)
        fields: dict[str, object] = {
            "server": "bank",
            "client": asked.client,
            "epoch": 1,
            "echo": asked.sent,
            "received": t2,
            "rate_ppm": 500.0,
            "sent": t3,
            "correlation": asked.correlation,
        }
        fields.update(changes)
        response = TimeResponse(**fields)  # type: ignore[arg-type]
        correlation = None if asked.correlation else request.correlation
        return inbound(REPLY, response, time.mono, correlation=correlation)


def make_asker(time: FakeTime, protocol: MqttVersion = MqttVersion.V5) -> Asker:
    counter = iter(range(1, 1_000))
    return Asker(
        time.clock(offset_s=-3.0),
        TOPICS,
        "phone",
        timeout_s=0.5,
        protocol=protocol,
        random_bytes=lambda size: next(counter).to_bytes(size, "big"),
    )


def test_a_request_carries_its_reply_topic_correlation_and_send_time() -> None:
    time = FakeTime()
    asker = make_asker(time)
    request = asker.request()
    assert request.topic == TOPICS.cristian_request
    assert (request.response_topic, request.expiry_s) == (REPLY, REQUEST_EXPIRY_S)
    assert request.correlation is not None
    assert request.tag == RequestSent(request.correlation)
    assert not request.nudge, "the answer comes unnudged: only the first hop would be quick"
    asked = TimeRequest.decode(request.payload)
    assert asked.sent == asker.clock.now_ns()
    assert asked.reply_to is None, "MQTT 5 carries it as a property"
    legacy = TimeRequest.decode(make_asker(time, MqttVersion.V311).request().payload)
    assert (legacy.reply_to, legacy.correlation) == (REPLY, request.correlation)


@pytest.mark.parametrize("protocol", list(MqttVersion))
def test_a_matching_answer_gives_the_servers_offset_within_its_bound(
    protocol: MqttVersion,
) -> None:
    time = FakeTime()
    asker = make_asker(time, protocol)
    request = asker.request()
    asker.sent(request.tag, time.mono)
    sample = asker.take(Server(800_000_000, one_way_ns=60 * US).answer(time, request))
    assert sample is not None
    truth = 0.8 + 3.0
    assert sample.offset_s == pytest.approx(truth, abs=1e-9)
    assert sample.delay_s == pytest.approx(120e-6)
    assert abs(sample.offset_s - truth) <= sample.error_bound_s
    assert sample.peer == "bank"


def test_an_asymmetric_path_stays_within_the_bound() -> None:
    time = FakeTime()
    asker = make_asker(time)
    request = asker.request()
    server = Server(800_000_000, one_way_ns=0, hold_ns=0)
    answer = server.answer(time, request)
    time.advance(300 * US)  # the answer took 300 µs longer than the request
    late = Inbound(answer.topic, answer.payload, time.mono, correlation=answer.correlation)
    sample = asker.take(late)
    assert sample is not None
    assert abs(sample.offset_s - 3.8) == pytest.approx(150e-6, abs=1e-9)
    assert abs(sample.offset_s - 3.8) <= sample.error_bound_s


def test_stale_duplicate_forged_and_late_answers_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    asker = make_asker(time)
    server = Server(0)
    request = asker.request()
    answer = server.answer(time, request)
    forged = server.answer(time, request, echo=123)
    assert asker.take(forged) is None, "a forged echo"
    assert len(asker.pending) == 1, "and the genuine answer may still come"
    assert asker.take(answer) is not None
    assert asker.take(answer) is None, "a duplicate"
    assert "no outstanding request" in caplog.text
    caplog.clear()
    second_server = server.answer(time, request, server="bank-2")
    with caplog.at_level(logging.DEBUG):
        assert asker.take(second_server) is None, "a second server's answer (no $share)"
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    stranger = Inbound(REPLY, answer.payload, time.mono, correlation=b"not-yours")
    assert asker.take(stranger) is None
    late_request = asker.request()
    time.advance(NS_PER_S)
    assert asker.take(server.answer(time, late_request)) is None
    assert "came after the request timed out" in caplog.text
    assert "no outstanding request" in caplog.text


@pytest.mark.parametrize(
    "changes",
    [
        {"received": 10**18, "sent": 10**18 - 5},  # answered before it was asked
        {"sent": 10**18 + 10 * NS_PER_S, "received": 10**18},  # held longer than the trip
        {"client": "tablet"},  # for another client than the reply topic names
    ],
)
def test_implausible_or_misaddressed_answers_are_dropped(changes: dict[str, object]) -> None:
    time = FakeTime()
    asker = make_asker(time)
    request = asker.request()
    assert asker.take(Server(0).answer(time, request, **changes)) is None


def test_a_burst_asks_one_at_a_time_and_keeps_the_lowest_delay() -> None:
    time = FakeTime()
    burst = Burst(make_asker(time), wanted=3)
    delays = [Server(0, one_way_ns=200 * US), Server(0, one_way_ns=50 * US)]
    (request,) = burst.step()
    assert burst.step() == [], "the next waits for this one's answer"
    for server in delays:
        (request,) = burst.take(server.answer(time, request)) or [request]
    # The third request is lost: it times out and the burst is done.
    time.advance(NS_PER_S)
    assert burst.step() == []
    assert burst.done
    best = burst.best()
    assert best is not None
    assert best.delay_s == pytest.approx(100e-6)
    assert (burst.sent, len(burst.samples)) == (3, 2)


def test_an_inquirer_asks_on_demand_and_wakes_for_the_timeout() -> None:
    time = FakeTime()
    inquirer = Inquirer(name="phone", site="bank", clock=time.clock(), timeout_s=0.5)
    assert inquirer.will() is None
    assert inquirer.subscriptions() == [REPLY]
    actions = inquirer.start(2)
    (request,) = publishes(actions)
    assert wake_of(actions) > time.mono + NS_PER_S // 2
    (second,) = publishes(inquirer.on_message(Server(0).answer(time, request)))
    time.advance(NS_PER_S)
    assert publishes(inquirer.on_timer(time.mono)) == []
    assert inquirer.burst is not None
    assert inquirer.burst.done
    assert second.topic == TOPICS.cristian_request


def make_node(time: FakeTime) -> CristianNode:
    counter = iter(range(1, 1_000))
    return CristianNode(
        name="phone",
        site="bank",
        clock=time.clock(offset_s=-3.0),
        interval_s=1.0,
        samples=2,
        timeout_s=0.5,
        random_bytes=lambda size: next(counter).to_bytes(size, "big"),
    )


def run_burst(node: CristianNode, time: FakeTime, server: Server) -> None:
    """Connect the node, which starts its first burst at once, and answer the burst."""
    requests = [p for p in publishes(node.on_connect(time.mono)) if p.tag is not None]
    while requests:
        request = requests.pop()
        node.on_sent(request.tag, time.mono)
        actions = node.on_message(server.answer(time, request))
        requests += [p for p in publishes(actions) if p.tag is not None]
        if wake_of(actions) <= time.mono:
            node.on_timer(time.mono)


def test_a_cristian_node_corrects_its_clock_and_reports_the_bound() -> None:
    time = FakeTime()
    node = make_node(time)
    run_burst(node, time, Server(800_000_000))
    assert node.clock.updates == 1
    assert node.clock.now_ns() - time.wall == pytest.approx(800_000_000, abs=100 * US)
    (status,) = publishes(node.on_timer(time.mono))
    reported = Status.decode(status.payload)
    assert (reported.role, reported.sync) == (RoleKind.NODE, SyncMode.CRISTIAN)
    assert reported.error_bound_s is not None
    assert 0 < reported.error_bound_s < 200e-6


def test_a_cristian_node_without_answers_moves_nothing(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    node = make_node(time)
    time.mono = wake_of(node.on_connect(time.mono))
    for _ in range(4):
        time.mono = wake_of(node.on_timer(time.mono))
    assert "no answer from a time server" in caplog.text
    assert node.clock.updates == 0
    stray = Server(0).answer(time, make_asker(time).request())
    node.on_message(stray)
    assert node.clock.updates == 0
