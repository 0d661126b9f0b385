"""The time server's decisions, in-process: which requests it answers, and with what."""

import pytest

from clocksync.core.clock import HOST_TOLERANCE_PPM, NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import RoundPlan
from clocksync.master.timeserver import ANSWER_EXPIRY_S, TimeServer
from clocksync.protocol.messages import TimeRequest, TimeResponse
from clocksync.protocol.timefmt import format_ns
from clocksync.protocol.topics import Topics
from clocksync.protocol.wire import SEND_TIME_MARKER
from tests.unit.fakes import FakeTime, inbound, publishes, wake_of

TOPICS = Topics("bank")
REPLY = TOPICS.cristian_reply("phone")


def make_server(time: FakeTime) -> TimeServer:
    server = TimeServer(name="bank", site="bank", clock=time.clock(offset_s=0.8, drift_ppm=40))
    server.on_connect(time.mono)
    return server


def ask(
    server: TimeServer | BerkeleyMaster,
    time: FakeTime,
    request: TimeRequest | bytes,
    response_topic: str | None = REPLY,
    correlation: bytes | None = b"\x01\x02",
) -> list[TimeResponse]:
    message = inbound(
        TOPICS.cristian_request,
        request,
        time.mono,
        response_topic=response_topic,
        correlation=correlation,
    )
    answers = []
    for publish in publishes(server.on_message(message)):
        assert publish.topic == REPLY
        assert publish.correlation == correlation
        assert publish.expiry_s == ANSWER_EXPIRY_S
        assert SEND_TIME_MARKER.encode() in publish.payload, "t3 is written in as it leaves"
        stamped = server.clock.reading_at(time.mono + 20_000)
        patched = publish.payload.replace(SEND_TIME_MARKER.encode(), format_ns(stamped).encode())
        answers.append(TimeResponse.decode(patched))
    return answers


def test_a_request_is_answered_with_its_arrival_and_echo() -> None:
    time = FakeTime()
    server = make_server(time)
    (answer,) = ask(server, time, TimeRequest("phone", time.wall - 5))
    assert answer.server == "bank"
    assert answer.client == "phone"
    assert answer.echo == time.wall - 5
    assert answer.received == server.clock.reading_at(time.mono)
    assert answer.sent > answer.received
    assert answer.rate_ppm == pytest.approx(HOST_TOLERANCE_PPM + 40)


def test_on_mqtt_3_the_reply_topic_and_correlation_come_from_the_payload() -> None:
    time = FakeTime()
    server = make_server(time)
    request = TimeRequest("phone", time.wall, reply_to=REPLY, correlation=b"\xaa")
    (answer,) = ask(server, time, request, response_topic=None, correlation=None)
    assert answer.correlation == b"\xaa"


@pytest.mark.parametrize(
    ("request_", "response_topic"),
    [
        (TimeRequest("phone", 1), None),  # nowhere to answer
        (TimeRequest("phone", 1), TOPICS.correction("KMC")),  # aimed at a correction topic
        (TimeRequest("phone", 1), TOPICS.cristian_reply("victim")),  # at another client
        (b'{"v": 1, "type": "time-request", "client": "phone", "sent": NaN}', REPLY),
        (b"x" * 1_000_000, REPLY),
        (b"", REPLY),
    ],
)
def test_misdirected_and_bad_requests_are_not_answered(
    request_: TimeRequest | bytes, response_topic: str | None
) -> None:
    time = FakeTime()
    server = make_server(time)
    assert ask(server, time, request_, response_topic=response_topic) == []


def test_a_reference_clock_never_corrects_itself_and_says_so() -> None:
    time = FakeTime()
    server = make_server(time)
    assert server.subscriptions() == [TOPICS.cristian_requests_shared]
    (answer,) = ask(server, time, TimeRequest("phone", 1))
    assert answer.rate_ppm < 1_000, "a reference clock does not slew"


def test_a_master_serves_once_in_sync_and_allows_for_its_slews() -> None:
    """Issue 9, defect 2: a master restarted 10 s ahead served its time before its first
    round.  It answers only once it has led a round (or, standing by, been corrected)."""
    time = FakeTime()
    master = BerkeleyMaster(name="bank", site="bank", clock=time.clock(), plan=RoundPlan())
    master.on_connect(time.mono)
    assert ask(master, time, TimeRequest("phone", 1)) == [], "listening: not in sync yet"
    while not master.in_sync:
        time.mono = wake_of(master.on_timer(time.mono))
    (answer,) = ask(master, time, TimeRequest("phone", 1))
    assert answer.rate_ppm == pytest.approx(HOST_TOLERANCE_PPM + 83_333)
    assert answer.epoch == master.epoch == time.wall // 1_000_000
    silent = BerkeleyMaster(
        name="bank", site="bank", clock=time.clock(), plan=RoundPlan(), timeserver=False
    )
    assert TOPICS.cristian_request not in silent.subscriptions()
    time.advance(NS_PER_S)
    assert ask(silent, time, TimeRequest("phone", 1)) == []


def test_a_huge_reply_topic_is_not_quoted_whole(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8, defect 10: a warning quoted a 60,000-character Response Topic."""
    time = FakeTime()
    server = make_server(time)
    assert ask(server, time, TimeRequest("phone", 1), response_topic="x" * 60_000) == []
    assert "asks for answers on" in caplog.text
    assert len(caplog.text) < 1_000
