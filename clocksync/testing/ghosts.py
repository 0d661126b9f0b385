"""A flood of ghosts, as anyone allowed to publish statuses could make one: retained
"online" statuses for names no process has.  Watched from outside, round by round: the
truth spread, how far apart the round summaries come, their size, and the polls sent to
the ghosts (what `mosquitto_sub -t 'clocksync/<site>/berkeley/poll/+'` shows).  Used by
the integration tests and bench/ghosts.py.
"""

import time
from dataclasses import dataclass, field

from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Status
from clocksync.protocol.topics import Topics
from clocksync.testing.chaos import ChaosSite
from clocksync.transport.link import MqttLink

ROUND_TIMEOUT_S = 30.0


def ghost_status(name: str) -> bytes:
    """A retained status a ghost would leave: a Berkeley node, online."""
    return Status(name, RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY).encode()


@dataclass
class Watched:
    """Rounds as seen from outside: the truth spread after each, how long apart their
    summaries came, how big they were, and the polls sent to names no process has."""

    spreads_s: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    all_answered: int = 0
    summary_bytes: list[int] = field(default_factory=list)
    missing_listed: list[int] = field(default_factory=list)
    ghost_polls: list[int] = field(default_factory=list)

    @property
    def period_s(self) -> float:
        return (self.arrivals[-1] - self.arrivals[0]) / (len(self.arrivals) - 1)


class PollWatcher:
    """Every poll on the site, as `mosquitto_sub -t '.../berkeley/poll/+'` would see it."""

    def __init__(self, site: ChaosSite) -> None:
        self.site = site
        self.topics = Topics(site.fleet.site)
        self.link = MqttLink(site.broker.url, "poll-watcher", subscriptions=[self.topics.poll("+")])
        assert self.link.wait_until_ready(10)
        self.ghost_polls = 0

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.site.observer.pump(0.02)
            for event in self.link.poll(0.0):
                if isinstance(event, Inbound):
                    name = self.topics.name_in(event.topic)
                    self.ghost_polls += name not in self.site.everyone

    def watch(self, rounds: int) -> Watched:
        observer, watched = self.site.observer, Watched()
        for _ in range(rounds):
            seen, polls_before = len(observer.rounds), self.ghost_polls
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            while len(observer.rounds) == seen:
                assert time.monotonic() < deadline, "no round"
                self.pump(0.02)
            self.pump(0.2)  # the statuses after its corrections
            summary = observer.rounds[seen]
            offsets = observer.true_offsets()
            watched.spreads_s.append(max(offsets.values()) - min(offsets.values()))
            watched.arrivals.append(observer.round_arrivals[seen])
            answered = {entry.name for entry in summary.participants}
            watched.all_answered += self.site.everyone <= answered
            watched.summary_bytes.append(len(summary.encode()))
            watched.missing_listed.append(len(summary.missing))
            watched.ghost_polls.append(self.ghost_polls - polls_before)
        return watched

    def retain_statuses(self, statuses: dict[str, bytes]) -> None:
        """Publish retained statuses, an empty one deleting a name's, in batches."""
        for count, (name, payload) in enumerate(statuses.items(), 1):
            self.link.publish(Publish(self.topics.status(name), payload, retain=True))
            if count % 500 == 0:
                self.pump(0.05)
