"""Seals: what they cover, what a reader refuses, and the key files."""

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.protocol.messages import Correction, TimeResponse
from clocksync.protocol.signing import (
    SIG_PLACEHOLDER,
    KeyFileError,
    Signer,
    TrustedKeys,
    finish_at_send,
)
from clocksync.protocol.timefmt import format_ns
from clocksync.protocol.wire import SEND_TIME_MARKER

NOW = 1_795_863_247_311_000_001
MASTER = Signer.generate()
ROGUE = Signer.generate()
TRUST = TrustedKeys([MASTER.private.public_key()])


def test_a_sealed_message_is_still_the_same_message() -> None:
    correction = Correction("lab", "KMC", 7, 3, 1, -0.000123)
    sealed = MASTER.seal(correction.encode())
    assert Correction.decode(sealed) == correction
    data = json.loads(sealed)
    assert data["key"] == MASTER.key_id
    assert list(data)[-2:] == ["key", "sig"]
    assert TRUST.refusal(sealed) is None


def test_unsigned_foreign_and_tampered_messages_are_refused() -> None:
    payload = Correction("lab", "KMC", 7, 3, 1, 0.001).encode()
    assert TRUST.refusal(payload) == "it is not signed"
    assert "not trusted" in str(TRUST.refusal(ROGUE.seal(payload)))
    sealed = MASTER.seal(payload)
    tampered = sealed.replace(b"0.001", b"3600.")
    assert TRUST.refusal(tampered) == "its signature does not match"
    relabelled = ROGUE.seal(payload).replace(ROGUE.key_id.encode(), MASTER.key_id.encode())
    assert TRUST.refusal(relabelled) == "its signature does not match"
    assert TRUST.refusal(sealed + b" ") == "it is not signed", "the seal must end the object"


@given(st.binary(max_size=300))
def test_any_bytes_are_refused_without_raising(payload: bytes) -> None:
    assert TRUST.refusal(payload) is not None


def test_a_time_answer_is_sealed_once_its_send_time_is_in() -> None:
    answer = TimeResponse("bank", "phone", 9, NOW, NOW, 540.0, 0, b"\x01\x02")
    waiting = MASTER.seal_later(answer.encode_for_send_time())
    assert TRUST.refusal(waiting) is not None, "a placeholder is no signature"
    sent = finish_at_send(waiting, NOW + 25, MASTER)
    assert len(sent) == len(waiting)
    assert TRUST.refusal(sent) is None
    decoded = TimeResponse.decode(sent)
    assert decoded.sent == NOW + 25
    assert decoded.correlation == b"\x01\x02", "the seal covers the client's nonce"
    assert SIG_PLACEHOLDER.encode() not in sent
    unsigned = finish_at_send(answer.encode_for_send_time(), NOW + 25, None)
    assert format_ns(NOW + 25).encode() in unsigned
    assert SEND_TIME_MARKER.encode() not in unsigned


def test_a_captured_answer_cannot_be_reused_for_another_request() -> None:
    answer = TimeResponse("bank", "phone", 9, NOW, NOW, 540.0, NOW, b"nonce-1")
    sealed = MASTER.seal(answer.encode())
    forged = sealed.replace(b"6e6f6e63652d31", b"6e6f6e63652d32")  # nonce-1 -> nonce-2
    assert TRUST.refusal(forged) == "its signature does not match"


def test_key_files_round_trip_and_the_private_key_stays_private(tmp_path: Path) -> None:
    private, public = MASTER.write(tmp_path / "lab")
    assert (private.name, public.name) == ("lab.key", "lab.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert Signer.load(private).key_id == MASTER.key_id
    assert TrustedKeys.load([public]).ids == {MASTER.key_id}
    with pytest.raises(FileExistsError):
        MASTER.write(tmp_path / "lab")


@pytest.mark.parametrize("content", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nxx\n"])
def test_unusable_key_files_are_refused_with_a_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pub"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=r"bad\.pub"):
        TrustedKeys.load([path])
    with pytest.raises(KeyFileError, match=r"bad\.pub"):
        Signer.load(path)
    with pytest.raises(KeyFileError, match="missing"):
        Signer.load(tmp_path / "missing.key")
