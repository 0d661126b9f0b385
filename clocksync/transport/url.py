"""Broker URLs: `mqtt://[user@]host[:port]`; the password never travels in argv."""

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_BROKER = "mqtt://localhost:1883"
BROKER_ENV = "CLOCKSYNC_BROKER"
PASSWORD_ENV = "CLOCKSYNC_PASSWORD"  # noqa: S105 (a variable name, not a secret)


@dataclass(frozen=True)
class BrokerUrl:
    """Where the broker is; the password comes from CLOCKSYNC_PASSWORD, never the URL."""

    host: str
    port: int = 1883
    username: str | None = None

    @classmethod
    def parse(cls, text: str) -> "BrokerUrl":
        """Raise ValueError with a readable reason for anything but an mqtt:// URL."""
        parts = urlsplit(text)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"expected mqtt://[user@]host[:port], got {text!r}")
        if parts.password is not None:
            raise ValueError(f"put the password in {PASSWORD_ENV}, not in the URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"unexpected path or query in {text!r}")
        try:
            port = parts.port or 1883
        except ValueError:
            raise ValueError(f"invalid port in {text!r}") from None
        return cls(parts.hostname, port, parts.username)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{user}{host}:{self.port}"
