"""Which leader a clock follows: the one a retained leader record, a poll or a fleet tick
names, switching only to a higher term (a new leader), or to any once the one followed has
been silent for LEADER_SILENCE_NS; never to a term so far ahead of the host clock that no
later leader could outbid it.  Berkeley nodes, fleet nodes and standby masters share it.
"""

import logging
from enum import Enum

from clocksync.core.clock import NS_PER_S, SoftwareClock

log = logging.getLogger(__name__)

LEADER_SILENCE_NS = 10 * NS_PER_S
"""How long the leader followed must be silent before any other may lead this clock."""
TERM_HORIZON_MS = 86_400_000
"""A term (a leader's epoch, from the time it took the lead, in ms) more than this ahead of
the host's clock is not believed: it would fence off every real leader."""


def believable(term: int, clock: SoftwareClock) -> bool:
    """Whether `term` is within TERM_HORIZON_MS of the host's clock: a forged record far
    ahead must not fence off every leader to come, nodes' and masters' alike."""
    return term <= clock.host_ns() // 1_000_000 + TERM_HORIZON_MS


class Followed(Enum):
    """What hearing from a would-be leader did."""

    REFUSED = "refused"
    SAME = "same"
    SWITCHED = "switched"


class LeaderWatch:
    """The leader (name, term) that `owner`'s clock follows."""

    def __init__(self, owner: str, clock: SoftwareClock) -> None:
        self.owner = owner
        self.clock = clock
        self.leader: tuple[str, int] | None = None
        self._heard = 0

    def follow(self, master: str, term: int, mono: int) -> Followed:
        """Hear from `master` in `term` at `mono`: follow it if it is the leader followed,
        a newer one, or the one followed has fallen silent."""
        current = self.leader
        if current == (master, term):
            self._heard = mono
            return Followed.SAME
        if not believable(term, self.clock):
            return Followed.REFUSED
        silent = mono - self._heard >= LEADER_SILENCE_NS
        if current is not None and term <= current[1] and not silent:
            return Followed.REFUSED
        self.leader, self._heard = (master, term), mono
        log.info("%s follows %s (term %d)", self.owner, master, term)
        return Followed.SWITCHED
