"""A node of each kind (`--sync berkeley`, `fleet` or `cristian`), with the command line's
defaults for what is not given: the one place `clocksync node` and clocksync.embed make
them."""

from typing import Literal

from clocksync.app.commands import CRISTIAN_DEFAULTS, FLEET_DEFAULTS
from clocksync.core.clock import SoftwareClock
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.nodes.cristian import CristianNode
from clocksync.nodes.fleet import FleetNode
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import Participant

Sync = Literal["berkeley", "fleet", "cristian"]


def node_for(
    sync: Sync,
    *,
    name: str,
    site: str,
    clock: SoftwareClock,
    status_interval_s: float,
    protocol: MqttVersion = MqttVersion.V5,
    keys: Keys = NO_KEYS,
    interval_s: float | None = None,
    samples: int | None = None,
    timeout_s: float | None = None,
) -> Participant:
    """`interval_s` is a Cristian node's alone; `samples` and `timeout_s` a Cristian or
    fleet node's (None: the default for the kind)."""
    if sync == "fleet":
        return FleetNode(
            name=name, site=site, clock=clock, status_interval_s=status_interval_s,
            samples=int(samples or FLEET_DEFAULTS["samples"]),
            timeout_s=float(timeout_s or FLEET_DEFAULTS["timeout"]), keys=keys, protocol=protocol,
        )  # fmt: skip
    if sync == "cristian":
        return CristianNode(
            name=name, site=site, clock=clock,
            interval_s=CRISTIAN_DEFAULTS["interval"] if interval_s is None else interval_s,
            samples=int(CRISTIAN_DEFAULTS["samples"] if samples is None else samples),
            timeout_s=CRISTIAN_DEFAULTS["timeout"] if timeout_s is None else timeout_s,
            status_interval_s=status_interval_s, protocol=protocol, keys=keys,
        )  # fmt: skip
    if sync == "berkeley":
        return BerkeleyNode(
            name=name, site=site, clock=clock, status_interval_s=status_interval_s, keys=keys
        )
    raise ValueError(f"sync must be berkeley, fleet or cristian, not {sync!r}")
