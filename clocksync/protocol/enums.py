"""The protocol's named values.  Each is a string enum, so it reads and prints as the string
that travels on the wire or on the command line."""

from enum import StrEnum


class MqttVersion(StrEnum):
    """The MQTT version a participant speaks.  On 3.1.1 the request/response properties
    (Response Topic, Correlation Data) travel in the payload instead."""

    V5 = "5"
    V311 = "3.1.1"


class RoleKind(StrEnum):
    """What a participant does, as its status says."""

    MASTER = "master"
    NODE = "node"
    TIMESERVER = "timeserver"


class State(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class SyncMode(StrEnum):
    """How a participant's clock is kept: by Berkeley rounds, polled by the master; by
    Berkeley rounds, asking the master itself (`fleet`: a node of a large fleet); by asking
    a time server; or not at all (a reference clock)."""

    BERKELEY = "berkeley"
    FLEET = "fleet"
    CRISTIAN = "cristian"
    REFERENCE = "reference"
