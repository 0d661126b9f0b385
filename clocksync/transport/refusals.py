"""Why a connection failed, in words that say what to check, and whether trying again soon
can help.  A refusal of credentials, authorization, protocol version or certificate will
not go away by itself: the link then retries at its longest interval."""

import socket
import ssl
from dataclasses import dataclass

from clocksync.transport.url import PASSWORD_ENV, BrokerUrl

BAD_PROTOCOL_VERSION = 132
BAD_CLIENT_ID = 133
BAD_CREDENTIALS = 134
NOT_AUTHORIZED = 135
BANNED = 138
BAD_AUTH_METHOD = 140
PERMANENT = {BAD_PROTOCOL_VERSION, BAD_CLIENT_ID, BAD_CREDENTIALS, NOT_AUTHORIZED, BANNED,
             BAD_AUTH_METHOD}  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    reason: str
    permanent: bool


def _password_hint(password_set: bool) -> str:
    return "" if password_set else f" (${PASSWORD_ENV} is unset)"


def refused_connection(broker: BrokerUrl, code: int, name: str, *, password_set: bool) -> Refusal:
    """The broker answered the CONNECT with reason `code` (MQTT 5 numbering; paho maps
    3.1.1's return codes onto it) and `name`."""
    where = f"broker {broker} refused the connection ({name})"
    if code == BAD_CREDENTIALS:
        hint = (
            f"check the user name in the URL and the password in ${PASSWORD_ENV}"
            f"{_password_hint(password_set)}"
        )
    elif code == NOT_AUTHORIZED and broker.username is None:
        hint = (
            f"it takes no anonymous clients: give a user name in the URL "
            f"({broker.scheme}://USER@{broker.host}) and the password in ${PASSWORD_ENV}"
        )
    elif code == NOT_AUTHORIZED:
        hint = (
            f"user {broker.username} may not connect: check the broker's password file "
            f"and ${PASSWORD_ENV}{_password_hint(password_set)}"
        )
    elif code == BAD_PROTOCOL_VERSION:
        hint = "it does not speak this MQTT version: try --protocol 3.1.1"
    elif code == BAD_CLIENT_ID:
        hint = "it refuses the client id, which is clocksync-SITE-NAME: check the names"
    else:
        hint = "see the broker's log"
    return Refusal(f"{where}: {hint}", code in PERMANENT)


def connect_failure(broker: BrokerUrl, error: Exception) -> Refusal:
    """Connecting to `broker` raised `error`."""
    address = f"{broker.host}:{broker.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return Refusal(
            f"TLS: the certificate of {address} was not accepted ({error.verify_message}): "
            "give the CA that signed it with --tls-ca, and name the broker as its "
            "certificate does",
            permanent=True,
        )
    if isinstance(error, ssl.SSLError):
        return Refusal(
            f"TLS handshake with {address} failed ({error.reason or error}): "
            f"is it a TLS listener, and does it want a client certificate (--tls-cert)?",
            permanent=True,
        )
    if type(error).__name__ == "WebsocketConnectionError":
        return Refusal(
            f"WebSocket handshake with {address} failed ({error}): is it a WebSockets "
            f"listener, and is the path {broker.path} right?",
            permanent=True,
        )
    if isinstance(error, ConnectionRefusedError):
        return Refusal(f"nothing listens at {address} (connection refused)", permanent=False)
    if isinstance(error, socket.gaierror):
        return Refusal(f"cannot resolve {broker.host}: {error}", permanent=False)
    return Refusal(f"cannot reach broker {broker}: {error}", permanent=False)
