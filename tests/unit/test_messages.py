"""Message formats: round trips, and bad input refused with MessageError."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.protocol import wire
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.messages import (
    Correction,
    MessageError,
    Poll,
    PreviousSend,
    Reply,
    RoundEntry,
    RoundSummary,
    Status,
    TimeRequest,
    TimeResponse,
)
from clocksync.protocol.wire import MAX_PAYLOAD, SEND_TIME_MARKER, Message

NOW = 1_795_863_247_311_000_001


def test_messages_round_trip() -> None:
    poll = Poll("lab", "KMC", 7, 3, 1)
    reply = Reply("KMC", 7, 3, 1, NOW, NOW + 12_345)
    interleaved = Reply("KMC", 7, 3, 2, NOW, NOW + 1, PreviousSend(1, NOW + 12_400))
    correction = Correction("lab", "KMC", 7, 3, 1, -0.000123)
    summary = RoundSummary(
        "lab",
        7,
        3,
        NOW,
        0.5,
        0.002,
        1.25,
        (
            RoundEntry("lab", RoleKind.MASTER, 0.0, 0.0, 0.5, False),
            RoundEntry("KMC", RoleKind.NODE, 1.0, 0.0003, -0.5, True),
        ),
        ("MIT",),
    )
    status = Status("KMC", RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY, 0.25, NOW, -0.5, 0.0, 3)
    will = Status("KMC", RoleKind.NODE, State.OFFLINE, SyncMode.BERKELEY)
    assert Poll.decode(poll.encode()) == poll
    assert Reply.decode(reply.encode()) == reply
    assert Reply.decode(interleaved.encode()) == interleaved
    assert Correction.decode(correction.encode()) == correction
    assert RoundSummary.decode(summary.encode()) == summary
    assert Status.decode(status.encode()) == status
    assert Status.decode(will.encode()) == will


def test_payloads_are_readable_json_with_rfc3339_times() -> None:
    data = json.loads(Reply("KMC", 7, 3, 1, NOW, NOW).encode())
    assert data == {
        "v": 1,
        "type": "reply",
        "node": "KMC",
        "epoch": 7,
        "round": 3,
        "seq": 1,
        "received": "2026-11-28T10:54:07.311000001Z",
        "previous": None,
        "sent": "2026-11-28T10:54:07.311000001Z",
        "adjusted_s": None,
    }


def test_stamped_reply_reads_the_send_time_after_encoding_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    real_encoder = wire._ENCODER

    class Encoder(json.JSONEncoder):
        def encode(self, o: Any) -> str:
            order.append("encode")
            return real_encoder.encode(o)

    def stamp() -> int:
        order.append("stamp")
        return NOW + 5

    monkeypatch.setattr(wire, "_ENCODER", Encoder())
    payload = Reply("KMC", 1, 2, 0, NOW, 0).encode_stamped(stamp)
    monkeypatch.undo()
    assert order == ["encode", "stamp"]
    assert Reply.decode(payload) == Reply("KMC", 1, 2, 0, NOW, NOW + 5)


def test_unknown_fields_are_ignored_for_later_versions() -> None:
    data = json.loads(Poll("lab", "KMC", 7, 3, 1).encode())
    data["sig"] = "reserved"
    assert Poll.decode(json.dumps(data).encode()) == Poll("lab", "KMC", 7, 3, 1)


def _correction(**changes: object) -> bytes:
    data = json.loads(Correction("lab", "KMC", 7, 3, 1, 0.001).encode())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2, 3]",
        b'"a string"',
        b"{}",
        b"[" * 100_000,
        b'{"v": 1, "type": "correction", "correction_s": NaN}',
        _correction(v=2),
        _correction(type="poll"),
        _correction(correction_s=float("inf")),
        _correction(correction_s="0.001"),
        _correction(correction_s=True),
        _correction(correction_s=1e12),
        _correction(correction_s=10**400),
        _correction(round=-1),
        _correction(round=1.5),
        _correction(round=True),
        _correction(round=2**64),
        _correction(node="KMC/#"),
        _correction(node=""),
        _correction(node="x" * 65),
        _correction(master=None),
        b" " * (MAX_PAYLOAD + 1),
    ],
)
def test_bad_corrections_are_refused(payload: bytes) -> None:
    with pytest.raises(MessageError):
        Correction.decode(payload)


def test_nan_constants_are_refused_even_when_the_field_is_not_read() -> None:
    payload = json.loads(Poll("lab", "KMC", 7, 3, 1).encode())
    text = json.dumps(payload)[:-1] + ', "extra": NaN}'
    with pytest.raises(MessageError, match="not a number"):
        Poll.decode(text.encode())


@pytest.mark.parametrize(
    "change",
    [
        {"host_time": "yesterday"},
        {"state": "sleeping"},
        {"role": "boss"},
        {"host_offset_s": [1]},
        {"updates": "3"},
    ],
)
def test_bad_status_is_refused(change: dict[str, object]) -> None:
    data = json.loads(
        Status("KMC", RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY, 0.0, NOW).encode()
    )
    data.update(change)
    with pytest.raises(MessageError):
        Status.decode(json.dumps(data).encode())


def test_bad_summary_participant_is_refused() -> None:
    summary = RoundSummary("lab", 1, 1, NOW, 0.0, 0.002, 0.0, ())
    data = json.loads(summary.encode())
    data["participants"] = [{"name": "KMC"}]
    with pytest.raises(MessageError, match="lacks"):
        RoundSummary.decode(json.dumps(data).encode())
    data["participants"] = "everyone"
    with pytest.raises(MessageError, match="list"):
        RoundSummary.decode(json.dumps(data).encode())


def test_an_integer_too_long_to_parse_is_refused() -> None:
    payload = b'{"v": 1, "type": "round", "round": 1' + b"0" * 5000 + b"}"
    with pytest.raises(MessageError, match="not JSON"):
        RoundSummary.decode(payload)


@pytest.mark.parametrize("previous", [[], {"seq": 1}, {"seq": -1, "sent": "x"}, "now"])
def test_bad_previous_send_is_refused(previous: object) -> None:
    data = json.loads(Reply("KMC", 7, 3, 1, NOW, NOW).encode())
    data["previous"] = previous
    with pytest.raises(MessageError, match="previous"):
        Reply.decode(json.dumps(data).encode())


def test_time_messages_round_trip() -> None:
    request = TimeRequest("phone", NOW)
    legacy = TimeRequest("phone", NOW, "clocksync/bank/cristian/reply/phone", b"\x00\xffid")
    response = TimeResponse("bank", "phone", 9, NOW, NOW + 10, 500.0, NOW + 20, b"\x01")
    for message in (request, legacy, response):
        assert type(message).decode(message.encode()) == message
    assert json.loads(legacy.encode())["correlation"] == "00ff6964"


def test_fields_added_later_may_be_left_out() -> None:
    data = json.loads(TimeRequest("phone", NOW).encode())
    del data["reply_to"], data["correlation"]
    assert TimeRequest.decode(json.dumps(data).encode()) == TimeRequest("phone", NOW)
    status = json.loads(Status("KMC", RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY).encode())
    del status["error_bound_s"]
    assert Status.decode(json.dumps(status).encode()).error_bound_s is None
    del status["sync"]
    with pytest.raises(MessageError, match="lacks 'sync'"):
        Status.decode(json.dumps(status).encode())


def test_send_time_marker_holds_the_place_of_the_stamped_field() -> None:
    response = TimeResponse("bank", "phone", 9, NOW, NOW, 500.0, 0)
    payload = response.encode_for_send_time()
    assert json.loads(payload)["sent"] == SEND_TIME_MARKER
    with pytest.raises(MessageError, match="sent"):
        TimeResponse.decode(payload)
    patched = payload.replace(SEND_TIME_MARKER.encode(), b"2026-11-28T10:54:07.311000009Z")
    assert TimeResponse.decode(patched).sent == NOW + 8


@pytest.mark.parametrize(
    "change",
    [
        {"reply_to": "clocksync/+/cristian/reply/x"},
        {"reply_to": ""},
        {"reply_to": "a" * 600},
        {"correlation": "xyz"},
        {"correlation": ""},
        {"correlation": "00" * 65},
        {"client": "../x"},
        {"sent": 12},
    ],
)
def test_bad_time_requests_are_refused(change: dict[str, object]) -> None:
    data = json.loads(TimeRequest("phone", NOW).encode())
    data.update(change)
    with pytest.raises(MessageError):
        TimeRequest.decode(json.dumps(data).encode())


@pytest.mark.parametrize("rate", [-1, float("nan"), 2e6, "500"])
def test_bad_rate_bounds_are_refused(rate: object) -> None:
    data = json.loads(TimeResponse("bank", "phone", 9, NOW, NOW, 500.0, NOW).encode())
    data["rate_ppm"] = rate
    with pytest.raises(MessageError):
        TimeResponse.decode(json.dumps(data).encode())


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)
times = st.integers(min_value=0, max_value=253_402_300_799_999_999_999)


@given(
    server=names,
    client=names,
    epoch=st.integers(min_value=0, max_value=2**63 - 1),
    echo=times,
    received=times,
    rate=st.floats(min_value=0, max_value=1e6),
    correlation=st.one_of(st.none(), st.binary(min_size=1, max_size=64)),
)
def test_a_time_answer_is_written_as_the_generic_encoder_writes_it(
    *,
    server: str, client: str, epoch: int, echo: int, received: int, rate: float,
    correlation: bytes | None,
) -> None:  # fmt: skip
    response = TimeResponse(server, client, epoch, echo, received, rate, 0, correlation)
    assert response.encode_for_send_time() == Message.encode_for_send_time(response)


def test_a_decoded_message_equals_the_one_constructed() -> None:
    status = Status("KMC", RoleKind.NODE, State.ONLINE, SyncMode.FLEET, host_offset_s=1e-5)
    decoded = Status.decode(status.encode())
    assert decoded == status
    assert hash(decoded) == hash(status)
