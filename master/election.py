"""Which master leads a site: an election through the broker, with no other service.

Every master publishes a retained candidate record (its Last Will deletes it) and reads
everyone's, and the leader publishes a retained leader record naming itself and its term.
A master that starts listens for LISTEN_ROUNDS rounds first, so that it knows the records
and does not lead or serve time before it has heard the site.  Then, each time it looks:

- a leader that is a candidate, and has been heard within SILENCE_ROUNDS rounds (its polls
  or its round summaries), keeps leading: a master that returns does not take over, so the
  site never splits;
- otherwise the candidate with the highest priority, the first name breaking a tie, leads;
  one that should but does not claim the lead within SILENCE_ROUNDS is passed over.

A new leader's term is above every term it has seen, so that polls and corrections from a
deposed leader, which carry an older one, are fenced off by nodes and standbys alike.
"""

from dataclasses import dataclass

LISTEN_ROUNDS = 2
SILENCE_ROUNDS = 3


@dataclass(frozen=True)
class Record:
    """A leader record as received: who leads, with what term."""

    leader: str
    term: int


class Election:
    """One master's view of its site's election; instants are monotonic ns."""

    def __init__(
        self, name: str, priority: int, incarnation: int, interval_ns: int, now: int
    ) -> None:
        self.name = name
        self.priority = priority
        self.incarnation = incarnation
        self._silence_ns = SILENCE_ROUNDS * interval_ns
        self._listen_until = now + LISTEN_ROUNDS * interval_ns
        self._candidates: dict[str, int] = {name: priority}
        self._record: Record | None = None
        self._heard_leader = now
        self._awaiting: tuple[str, int] | None = None
        self._passed_over: set[str] = set()
        self.term = 0

    @property
    def record(self) -> Record | None:
        return self._record

    def candidate(self, name: str, priority: int | None) -> None:
        """A candidate record arrived (`priority`), or was deleted (None)."""
        if name == self.name:
            return
        if priority is None:
            self._candidates.pop(name, None)
        else:
            self._candidates[name] = priority
            self._passed_over.discard(name)

    def leader_record(self, record: Record, now: int) -> None:
        """A leader record arrived.  An older term than one already seen is a deposed
        leader's, and ignored."""
        if self._record is not None and record.term < self._record.term:
            return
        if record != self._record:
            self._heard_leader = now
        self._record = record
        self._passed_over.discard(record.leader)

    def heard(self, master: str, term: int, now: int) -> None:
        """A poll or round summary from `master`, in `term`: the leader is alive."""
        record = self._record
        if record is not None and (master, term) == (record.leader, record.term):
            self._heard_leader = now

    def leader(self, now: int) -> str | None:
        """Who should lead now: this master, another, or None while listening."""
        if now < self._listen_until:
            return None
        record = self._record
        if record is not None and record.leader == self.name and self.term == record.term:
            return self.name
        if (
            record is not None
            and record.leader in self._candidates
            and now - self._heard_leader < self._silence_ns
        ):
            return record.leader
        dead = {record.leader} if record is not None and record.leader != self.name else set()
        ranked = sorted(
            (name for name in self._candidates if name not in self._passed_over | dead),
            key=lambda name: (-self._candidates[name], name),
        )
        for chosen in ranked:
            if chosen == self.name:
                return chosen
            if self._awaiting is None or self._awaiting[0] != chosen:
                self._awaiting = (chosen, now)
            if now - self._awaiting[1] < self._silence_ns:
                return chosen
            self._passed_over.add(chosen)  # it should lead, but has not claimed the lead
            self._awaiting = None
        return self.name

    def claim(self, now_ms: int) -> Record:
        """Take the lead: a term above every term seen, at least the time now in ms."""
        seen = 0 if self._record is None else self._record.term
        self.term = max(now_ms, self.incarnation, seen + 1)
        self._record = Record(self.name, self.term)
        self._heard_leader = 0
        return self._record
