"""What an operator sees of a site, like `chronyc sources` and `tracking` together: built from
the retained statuses, the round summaries and the leader record, with no I/O, so that the
terminal monitor, its JSON snapshot and the tests all read the same numbers.

Per participant: its role, state, how it syncs and whom it follows; from the latest round
that counted it, its offset from the master as the master measured it (before correcting),
the delay, the correction sent and whether it was left out; from its own status, its last
correction, its error bound, its frequency estimate and the truth signal; and how long ago
its status came.  For the site: who leads and in which term, the latest round's spread, and
the round rate over the rounds seen.
"""

import logging
from collections import deque
from dataclasses import dataclass, field

from clocksync.core.clock import NS_PER_S
from clocksync.protocol.enums import State
from clocksync.protocol.envelope import Inbound
from clocksync.protocol.messages import Leader, MessageError, RoundEntry, RoundSummary, Status
from clocksync.protocol.timefmt import format_ns
from clocksync.protocol.topics import Topics

log = logging.getLogger(__name__)

RATE_ROUNDS = 16
"""Round summaries the round rate is taken over."""


@dataclass
class _Seen:
    status: Status
    at_mono: int
    previous: Status | None = None

    def truth_at(self, host_time: int) -> float | None:
        """This participant's truth offset at `host_time`, on the line through its last
        two statuses (a clock runs at a steady rate between corrections): statuses come
        at different moments, and at 100 ppm a second apart is 100 µs."""
        now, before = self.status, self.previous
        if now.host_offset_s is None or now.host_time is None:
            return None
        if before is None or before.host_offset_s is None or before.host_time is None:
            return now.host_offset_s
        span = now.host_time - before.host_time
        if span <= 0:
            return now.host_offset_s
        slope = (now.host_offset_s - before.host_offset_s) / span
        return now.host_offset_s + slope * (host_time - now.host_time)


@dataclass
class SiteView:
    """The latest of everything a site publishes about itself, fed message by message."""

    topics: Topics
    statuses: dict[str, _Seen] = field(default_factory=dict)
    leader: Leader | None = None
    last_round: RoundSummary | None = None
    round_starts: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RATE_ROUNDS))
    """(round, its start on the master's clock) of the latest summaries of one term."""

    @property
    def subscriptions(self) -> list[str]:
        return [self.topics.all_status, self.topics.round, self.topics.leader]

    def handle(self, message: Inbound) -> None:
        """Take one message; a malformed one is logged and dropped, a deleted retained
        status (an empty payload) forgets that participant."""
        topic, mono = message.topic, message.received_mono
        try:
            if topic == self.topics.round and message.payload:
                summary = RoundSummary.decode(message.payload)
                if self.last_round is not None and self.last_round.epoch != summary.epoch:
                    self.round_starts.clear()  # another leader counts its own rounds
                self.last_round = summary
                self.round_starts.append((summary.round, summary.started))
            elif topic == self.topics.leader and message.payload:
                self.leader = Leader.decode(message.payload)
            elif not message.payload:
                self.statuses.pop(self.topics.name_in(topic) or "", None)
            elif self.topics.name_in(topic) is not None and topic.endswith("/status"):
                status = Status.decode(message.payload)
                if status.name != self.topics.name_in(topic):
                    log.warning("dropped a status for %s on %s", status.name, topic)
                    return
                seen = self.statuses.get(status.name)
                self.statuses[status.name] = _Seen(
                    status, mono, None if seen is None else seen.status
                )
        except MessageError as error:
            log.warning("dropped a bad message on %s: %s", topic, error)

    def rounds_per_minute(self) -> float | None:
        """From the summaries seen (the retained one too), by their rounds' numbers and
        start times, so that neither when they arrived nor a lost one skews it; None before
        two of one term."""
        starts = self.round_starts
        if len(starts) < 2 or starts[-1][1] <= starts[0][1]:
            return None
        (first, began), (last, ended) = starts[0], starts[-1]
        return (last - first) * 60 * NS_PER_S / (ended - began)

    def snapshot(self, now_mono: int) -> dict[str, object]:
        """The site now, as plain data (the JSON document `monitor --once --json` prints)."""
        summary = self.last_round
        entries: dict[str, RoundEntry] = (
            {} if summary is None else {entry.name: entry for entry in summary.participants}
        )
        leader = self.leader
        reference = self._leader()
        participants = [
            _row(seen, entries.get(name), now_mono, reference)
            for name, seen in sorted(self.statuses.items())
        ]
        return {
            "site": self.topics.site,
            "leader": None if leader is None else leader.leader,
            "term": None if leader is None else leader.epoch,
            "round": None if summary is None else summary.round,
            "round_started": None if summary is None else format_ns(summary.started),
            "spread_s": None if summary is None else summary.spread_s,
            "rounds_per_minute": self.rounds_per_minute(),
            "fleet_asked": None if summary is None else summary.fleet_asked,
            "fleet_reported": None if summary is None else summary.fleet_reported,
            "missing": [] if summary is None else list(summary.missing),
            "participants": participants,
        }

    def _leader(self) -> _Seen | None:
        """The leader, online: the others' true offsets are read against its."""
        name = self.leader.leader if self.leader is not None else None
        seen = self.statuses.get(name or "")
        return None if seen is None or seen.status.state != State.ONLINE else seen


def _row(
    seen: _Seen, entry: RoundEntry | None, now_mono: int, leader: _Seen | None
) -> dict[str, object]:
    status = seen.status
    truth = status.host_offset_s
    leader_truth = (
        None if leader is None or status.host_time is None else leader.truth_at(status.host_time)
    )
    return {
        "name": status.name,
        "role": status.role,
        "state": status.state,
        "sync": status.sync,
        "leader": status.leader,
        "offset_s": None if entry is None else entry.offset_s,
        "delay_s": None if entry is None else entry.delay_s,
        "correction_s": None if entry is None else entry.correction_s,
        "excluded": None if entry is None else entry.excluded,
        "last_correction_s": status.last_correction_s,
        "error_bound_s": status.error_bound_s,
        "frequency_ppm": status.frequency_ppm,
        "frequency_error_ppm": status.frequency_error_ppm,
        "host_offset_s": truth,
        "true_offset_from_leader_s": (
            None if truth is None or leader_truth is None else truth - leader_truth
        ),
        "last_seen_s": (now_mono - seen.at_mono) / NS_PER_S,
    }
