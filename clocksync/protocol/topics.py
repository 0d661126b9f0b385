"""The topic tree.  Every topic clocksync uses is built here, so the README has one source.

    clocksync/<site>/nodes/<name>/status           retained status of every participant
    clocksync/<site>/berkeley/poll/<name>          master -> one node
    clocksync/<site>/berkeley/reply/<name>         node -> master
    clocksync/<site>/berkeley/correction/<name>    master -> one node
    clocksync/<site>/berkeley/round                retained summary of the latest round
    clocksync/<site>/berkeley/leader               retained: who leads, and its term
    clocksync/<site>/berkeley/fleet/tick           leader -> every fleet node: a round begins
    clocksync/<site>/berkeley/fleet/ask/<master>/<name>
                                                   fleet node -> that master: the time?
    clocksync/<site>/berkeley/fleet/answer/<name>  master -> one fleet node
    clocksync/<site>/berkeley/fleet/report/<name>  fleet node -> leader: its offset
    clocksync/<site>/berkeley/fleet/result         leader -> every fleet node: the average
    clocksync/<site>/cristian/request              client -> time server (one of them:
                                                   they share `$share/clocksync-timeservers/`)
    clocksync/<site>/cristian/reply/<name>         time server -> one client

A node publishes only below its own name (a fleet node's ask ends with it), so a broker
ACL can bind each name to one account and no node can answer, or correct, for another.
"""

import re
from dataclasses import dataclass

ROOT = "clocksync"
SERVER_GROUP = "clocksync-timeservers"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def valid_name(name: str) -> bool:
    """A participant or site name: one topic level, no wildcards, at most 64 characters."""
    return _NAME.fullmatch(name) is not None


def check_name(name: str) -> str:
    """Return `name`, or raise ValueError saying what a name may contain."""
    if not valid_name(name):
        raise ValueError(
            f"invalid name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Topics:
    """The topics of one site."""

    site: str

    def __post_init__(self) -> None:
        check_name(self.site)

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.site}"

    def status(self, name: str) -> str:
        return f"{self.prefix}/nodes/{name}/status"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/nodes/+/status"

    def poll(self, name: str) -> str:
        return f"{self.prefix}/berkeley/poll/{name}"

    def reply(self, name: str) -> str:
        return f"{self.prefix}/berkeley/reply/{name}"

    @property
    def all_replies(self) -> str:
        return f"{self.prefix}/berkeley/reply/+"

    def correction(self, name: str) -> str:
        return f"{self.prefix}/berkeley/correction/{name}"

    @property
    def round(self) -> str:
        return f"{self.prefix}/berkeley/round"

    @property
    def leader(self) -> str:
        return f"{self.prefix}/berkeley/leader"

    @property
    def fleet_tick(self) -> str:
        return f"{self.prefix}/berkeley/fleet/tick"

    def fleet_ask(self, master: str, name: str) -> str:
        """A fleet node's time request, to one master only: the leader, or the standby
        master the round's tick drew for it, so that the leader can spread the fleet's
        asks over its standbys without a shared subscription."""
        return f"{self.prefix}/berkeley/fleet/ask/{master}/{name}"

    def fleet_asks_to(self, master: str) -> str:
        return f"{self.prefix}/berkeley/fleet/ask/{master}/+"

    def fleet_answer(self, name: str) -> str:
        return f"{self.prefix}/berkeley/fleet/answer/{name}"

    def fleet_report(self, name: str) -> str:
        return f"{self.prefix}/berkeley/fleet/report/{name}"

    @property
    def all_fleet_reports(self) -> str:
        return f"{self.prefix}/berkeley/fleet/report/+"

    @property
    def fleet_result(self) -> str:
        return f"{self.prefix}/berkeley/fleet/result"

    @property
    def cristian_request(self) -> str:
        return f"{self.prefix}/cristian/request"

    @property
    def cristian_requests_shared(self) -> str:
        """What time servers subscribe to: an MQTT shared subscription, so that each request
        goes to one server of the site's group, and on to another when one is gone."""
        return f"$share/{SERVER_GROUP}/{self.cristian_request}"

    def cristian_reply(self, name: str) -> str:
        return f"{self.prefix}/cristian/reply/{name}"

    def name_in(self, topic: str) -> str | None:
        """The participant a `.../<name>` or `.../<name>/status` topic is about."""
        levels = topic.split("/")
        if topic.endswith("/status") and len(levels) == 5:
            return levels[3]
        if levels[2:4] == ["berkeley", "fleet"]:
            return levels[-1] if len(levels) in (6, 7) else None
        return levels[-1] if len(levels) == 5 else None
