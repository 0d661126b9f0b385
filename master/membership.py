"""Whom a round polls: membership that a flood of statuses cannot swell.

Anyone who may publish can announce a node, with a retained status that stays: ten
thousand ghosts cost the master nothing if it polls only what answers.  So a node is
*live* while it answered one of the last LIVE_ROUNDS rounds, and polled fully; any other
member is *silent*: it is probed with one poll, each silent name again after a gap that
doubles (up to MAX_GAP rounds) while it stays silent.  A round probes at most
PROBES_PER_ROUND names, or twice as many as answered the last round's probes if more: a
fleet coming up at once joins within a few rounds, while ghosts, which never answer, keep
the probes few.  A new node is silent until its first answer, which a probe brings at once.  A
node whose status says it left goes when it next fails to answer, so that a status forged
in its name cannot take a node that answers out of the rounds; one cleared from the broker
(an empty retained status) goes at once.  What a round summary lists stays small.
"""

from collections.abc import Iterable
from dataclasses import dataclass

LIVE_ROUNDS = 3
PROBES_PER_ROUND = 64
MAX_GAP = 64
MAX_LISTED = 20
"""Missing nodes named in a round summary at most; the rest are counted."""


@dataclass(frozen=True)
class Polling:
    """Whom one round polls: the live nodes fully, the silent ones probed once."""

    live: tuple[str, ...]
    probes: tuple[str, ...]


@dataclass(frozen=True)
class Closed:
    """What a round showed: the live nodes that did not answer, and who is gone."""

    missing: tuple[str, ...]
    gone: frozenset[str]


class Membership:
    def __init__(self) -> None:
        self._members: set[str] = set()
        self._leaving: set[str] = set()
        self._answered: dict[str, int] = {}
        self._probe_at: dict[str, int] = {}
        self._gap: dict[str, int] = {}
        self._budget = PROBES_PER_ROUND
        self.joined = 0

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def announce(self, name: str, *, serving: bool) -> None:
        """A status says `name` is a Berkeley node online (`serving`) or not."""
        if not serving:
            if name in self._members:
                self._leaving.add(name)
            return
        self._leaving.discard(name)
        if name not in self._members:
            self._members.add(name)
            self.joined += 1

    def seed(self, names: Iterable[str]) -> None:
        """Take `names` (members the last leader heard from) as live from the start."""
        for name in names:
            if name in self._members:
                self._answered[name] = 0
                self._probe_at.pop(name, None)

    def forget(self, name: str) -> None:
        """The broker no longer holds a status for `name`."""
        for table in (self._answered, self._probe_at, self._gap):
            table.pop(name, None)
        self._members.discard(name)
        self._leaving.discard(name)

    def plan(self, round_number: int) -> Polling:
        live, due = [], []
        for name in sorted(self._members):
            if self._answered.get(name, -LIVE_ROUNDS - 1) >= round_number - LIVE_ROUNDS:
                live.append(name)
            elif name in self._leaving:
                self.forget(name)  # silent and saying it left: nothing to wait for
            elif self._probe_at.get(name, 0) <= round_number:
                due.append(name)
        due.sort(key=lambda name: (self._probe_at.get(name, 0), name))
        return Polling(tuple(sorted(live)), tuple(due[: self._budget]))

    def close(self, round_number: int, polled: Polling, answered: Iterable[str]) -> Closed:
        """Record who answered round `round_number`."""
        answered = set(answered)
        self._leaving -= answered  # whatever a status said, it answers
        for name in answered:
            self._answered[name] = round_number
            self._gap.pop(name, None)
            self._probe_at.pop(name, None)
        self._budget = max(PROBES_PER_ROUND, 2 * len(answered.intersection(polled.probes)))
        for name in polled.probes:
            if name not in answered:
                gap = min(2 * self._gap.get(name, 1), MAX_GAP)
                self._gap[name] = gap
                self._probe_at[name] = round_number + gap
        gone = frozenset(name for name in self._leaving if name not in answered)
        for name in gone:
            self.forget(name)
        missing = tuple(name for name in polled.live if name not in answered and name not in gone)
        return Closed(missing, gone)
