"""Broker URLs: `mqtt://`, `mqtts://`, `ws://` and `wss://`, with an optional user name and,
for WebSockets, a path; the password never travels in argv, and TLS files come apart."""

import os
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_BROKER = "mqtt://localhost:1883"
BROKER_ENV = "CLOCKSYNC_BROKER"
PASSWORD_ENV = "CLOCKSYNC_PASSWORD"  # noqa: S105 (a variable name, not a secret)
TLS_ENV = {"ca": "CLOCKSYNC_TLS_CA", "cert": "CLOCKSYNC_TLS_CERT", "key": "CLOCKSYNC_TLS_KEY"}
WEBSOCKET_PATH = "/mqtt"


class Scheme(StrEnum):
    MQTT = "mqtt"
    MQTTS = "mqtts"
    WS = "ws"
    WSS = "wss"

    @property
    def default_port(self) -> int:
        return {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}[self.value]

    @property
    def tls(self) -> bool:
        return self in (Scheme.MQTTS, Scheme.WSS)

    @property
    def websockets(self) -> bool:
        return self in (Scheme.WS, Scheme.WSS)


@dataclass(frozen=True)
class BrokerUrl:
    """Where the broker is and how to speak to it; the password comes from
    CLOCKSYNC_PASSWORD, never the URL."""

    host: str
    port: int = 1883
    username: str | None = None
    scheme: Scheme = Scheme.MQTT
    path: str = WEBSOCKET_PATH

    @classmethod
    def parse(cls, text: str) -> "BrokerUrl":
        """Raise ValueError with a readable reason for anything else."""
        parts = urlsplit(text)
        try:
            scheme = Scheme(parts.scheme)
        except ValueError:
            raise ValueError(
                f"expected mqtt://, mqtts://, ws:// or wss:// and a host, got {text!r}"
            ) from None
        if not parts.hostname:
            raise ValueError(f"expected {scheme}://[user@]host[:port], got {text!r}")
        if parts.password is not None:
            raise ValueError(f"put the password in {PASSWORD_ENV}, not in the URL")
        if parts.query or parts.fragment:
            raise ValueError(f"unexpected query in {text!r}")
        if not scheme.websockets and parts.path not in ("", "/"):
            raise ValueError(f"unexpected path in {text!r}: only ws:// and wss:// have one")
        try:
            port = parts.port or scheme.default_port
        except ValueError:
            raise ValueError(f"invalid port in {text!r}") from None
        path = parts.path if scheme.websockets and parts.path else WEBSOCKET_PATH
        return cls(parts.hostname, port, parts.username, scheme, path)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.scheme.websockets else ""
        return f"{self.scheme}://{user}{host}:{self.port}{path}"


@dataclass(frozen=True)
class TlsFiles:
    """What TLS needs beyond the system's trust store: a CA to trust instead, and a client
    certificate for brokers that want one.  Each may also come from the environment
    (CLOCKSYNC_TLS_CA, CLOCKSYNC_TLS_CERT, CLOCKSYNC_TLS_KEY)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def from_environment(
        cls, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
    ) -> "TlsFiles":
        def pick(given: Path | None, name: str) -> Path | None:
            value = os.environ.get(TLS_ENV[name])
            return given if given is not None or not value else Path(value)

        return cls(pick(ca, "ca"), pick(cert, "cert"), pick(key, "key"))

    def context(self) -> ssl.SSLContext:
        """TLS 1.2 or newer, the broker's certificate and host name verified.  Raises
        ValueError with a readable reason for files that cannot be used."""
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both --tls-cert and --tls-key")
        try:
            context = ssl.create_default_context(cafile=self.ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            raise ValueError(f"cannot use the TLS files: {error}") from None
        return context
