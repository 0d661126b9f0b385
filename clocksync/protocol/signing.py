"""Signed time: Ed25519 seals on the messages that move a clock.

A sealed payload is the message's JSON object with two members added at its end: `key`,
the signer's key id (the first 8 bytes of the SHA-256 of its raw public key, in hex), and
`sig`, the Ed25519 signature (base64url, unpadded) of everything before `, "sig"` with the
object closed:

    {"v": 1, "type": "correction", ..., "key": "0123456789abcdef", "sig": "..."}
    signed bytes: {"v": 1, "type": "correction", ..., "key": "0123456789abcdef"}

So the signature covers every field exactly as sent, and a reader that knows nothing of
seals still reads the message.  A message whose send time is written in at the send
instant (a time server's t3) is sealed there too: it is encoded with SIG_PLACEHOLDER, and
`finish` writes the time and then the signature, keeping the payload's length.  A
placeholder that was never replaced is not a valid signature, so such a message is refused.

Replays are not refused here but by what a signature covers: a poll's master, epoch, round
and sequence number, which a node answers once; a time answer's correlation data, the
client's fresh nonce, which the client accepts once (as in Roughtime).
"""

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from clocksync.protocol.wire import SEND_TIME_MARKER, stamp_send_time

SIGNATURE_CHARS = 86
SIG_PLACEHOLDER = "=" * SIGNATURE_CHARS
"""Not base64url, and not made of the send-time marker's characters: never a valid signature."""
_SEAL = re.compile(rb', "key": "([0-9a-f]{16})"(, "sig": "([A-Za-z0-9_-]{86})")\}\Z')
_PLACEHOLDER = SIG_PLACEHOLDER.encode()
_MARKER = SEND_TIME_MARKER.encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class KeyFileError(ValueError):
    """A key file that cannot be used, with a readable reason."""


@dataclass(frozen=True)
class Signer:
    """A private key that seals messages."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> "Signer":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> "Signer":
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise KeyFileError(f"cannot read a private key from {path}: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def write(self, prefix: Path) -> tuple[Path, Path]:
        """Write PREFIX.key (the private key, readable by its owner alone) and PREFIX.pub."""
        private_path, public_path = prefix.with_suffix(".key"), prefix.with_suffix(".pub")
        private_pem = self.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as private_file:
            private_file.write(private_pem)
        public_pem = self.private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        public_path.write_bytes(public_pem)
        return private_path, public_path

    def _signature(self, signed: bytes) -> bytes:
        return base64.urlsafe_b64encode(self.private.sign(signed)).rstrip(b"=")

    def _head(self, payload: bytes) -> bytes:
        return payload[:-1] + f', "key": "{self.key_id}"'.encode()

    def seal(self, payload: bytes) -> bytes:
        """`payload` (a JSON object) with this key's id and signature added."""
        head = self._head(payload)
        return head + b', "sig": "' + self._signature(head + b"}") + b'"}'

    def seal_later(self, payload: bytes) -> bytes:
        """`payload` with this key's id and a placeholder for the signature, to be written
        by `finish` once the send time is in."""
        return self._head(payload) + b', "sig": "' + _PLACEHOLDER + b'"}'

    def finish(self, payload: bytes) -> bytes:
        """Replace the signature placeholder of a `seal_later` payload."""
        at = payload.rfind(b', "sig": "' + _PLACEHOLDER)
        if at < 0:
            return payload
        return payload[:at] + b', "sig": "' + self._signature(payload[:at] + b"}") + b'"}'


def finish_at_send(payload: bytes, reading_ns: int, signer: Signer | None) -> bytes:
    """What the sender writes in at the send instant: the send time in place of the
    marker, then, if the payload awaits one, the signature; the length does not change."""
    if _MARKER not in payload:
        return payload
    stamped = stamp_send_time(payload, reading_ns)
    return stamped if signer is None else signer.finish(stamped)


class TrustedKeys:
    """The public keys whose seals a participant accepts."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in keys}

    @classmethod
    def load(cls, paths: Iterable[Path]) -> "TrustedKeys":
        keys = []
        for path in paths:
            try:
                key = load_pem_public_key(path.read_bytes())
            except (OSError, ValueError, TypeError) as error:
                raise KeyFileError(f"cannot read a public key from {path}: {error}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError(f"{path} does not hold an Ed25519 public key")
            keys.append(key)
        return cls(keys)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def refusal(self, payload: bytes) -> str | None:
        """Why `payload` is not sealed by a trusted key, or None when it is."""
        seal = _SEAL.search(payload)
        if seal is None:
            return "it is not signed"
        key = self._keys.get(seal[1].decode())
        if key is None:
            return f"it is signed by key {seal[1].decode()}, which is not trusted"
        signature = base64.urlsafe_b64decode(seal[3] + b"==")
        try:
            key.verify(signature, payload[: seal.start(2)] + b"}")
        except InvalidSignature:
            return "its signature does not match"
        return None


@dataclass(frozen=True)
class Keys:
    """A participant's keys: its own, to seal what it sends, and those whose seals it
    requires on the time-bearing messages it receives (none: it takes them unsealed)."""

    signer: Signer | None = None
    trusted: TrustedKeys | None = None

    @classmethod
    def load(cls, signing_key: Path | None, trust_keys: Sequence[Path] | None) -> "Keys":
        """From a private key file and public key files (none given: none used); raises
        KeyFileError for one that cannot be read."""
        return cls(
            signer=None if signing_key is None else Signer.load(signing_key),
            trusted=TrustedKeys.load(trust_keys) if trust_keys else None,
        )


NO_KEYS = Keys()
