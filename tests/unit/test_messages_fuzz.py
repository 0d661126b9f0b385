"""Whatever arrives, decoding either yields a message or raises MessageError: never
anything else, so a hostile payload cannot crash a participant."""

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

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

DECODERS = (
    Poll.decode,
    Reply.decode,
    Correction.decode,
    RoundSummary.decode,
    Status.decode,
    TimeRequest.decode,
    TimeResponse.decode,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)

NOW = 1_795_863_247_311_000_001
VALID = {
    "poll": Poll("lab", "KMC", 7, 3, 1).encode(),
    "reply": Reply("KMC", 7, 3, 1, NOW, NOW + 1, PreviousSend(0, NOW - 5)).encode(),
    "correction": Correction("lab", "KMC", 7, 3, 1, 0.001).encode(),
    "round": RoundSummary(
        "lab", 7, 3, NOW, 0.0, 0.002, 0.0, (RoundEntry("lab", RoleKind.MASTER, 0, 0, 0, False),)
    ).encode(),
    "status": Status("KMC", RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY, 0.25, NOW).encode(),
    "time-request": TimeRequest("phone", NOW, "clocksync/s/cristian/reply/phone", b"id").encode(),
    "time-response": TimeResponse("bank", "phone", 1, NOW, NOW, 500.0, NOW, b"id").encode(),
}


def decode_all(payload: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(MessageError):
            decode(payload)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(payload: bytes) -> None:
    decode_all(payload)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json(value: object) -> None:
    decode_all(json.dumps(value).encode())


@settings(max_examples=600)
@given(st.sampled_from(sorted(VALID)), st.data())
def test_valid_messages_with_one_field_changed_or_removed(kind: str, data: st.DataObject) -> None:
    message = json.loads(VALID[kind])
    key = data.draw(st.sampled_from(sorted(message)))
    if data.draw(st.booleans()):
        del message[key]
    else:
        message[key] = data.draw(json_values)
    decode_all(json.dumps(message).encode())
