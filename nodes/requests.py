"""A Cristian client's outstanding requests: what ties an answer to its request.

An answer counts only if its correlation data names an outstanding request, its echo is
that request's send time, and it came before the request's deadline; it is then taken out,
so a duplicate of it matches nothing.  A mismatched echo leaves the request outstanding,
since the genuine answer may still come.  On a broker without shared subscriptions every
time server answers every request: a later server's answer to a request already answered
is expected there, and told apart from a replay.
"""

from collections import OrderedDict
from dataclasses import dataclass, replace

REMEMBERED_ANSWERS = 64
"""Answered requests remembered, to tell a second server's answer from a replay."""
ANSWERED_BY_ANOTHER = "another server answered it first"


@dataclass(frozen=True)
class Outstanding:
    """A request awaiting its answer: the send time it carried (echoed back by the server),
    when it really left on the monotonic clock, and when to give up on it."""

    echo: int
    sent_mono: int
    deadline_mono: int


class PendingRequests:
    """The client's outstanding requests, by correlation data."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, Outstanding] = {}
        self._answered: OrderedDict[bytes, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, correlation: bytes, request: Outstanding) -> None:
        self._waiting[correlation] = request

    def left_at(self, correlation: bytes, sent_mono: int) -> None:
        """The request really left at `sent_mono`: its round trip and deadline count from
        then."""
        request = self._waiting.get(correlation)
        if request is not None:
            timeout = request.deadline_mono - request.sent_mono
            self._waiting[correlation] = replace(
                request, sent_mono=sent_mono, deadline_mono=sent_mono + timeout
            )

    def take(
        self, correlation: bytes, echo: int, arrived_mono: int, server: str
    ) -> Outstanding | str:
        """The request `server`'s answer is for, or why the answer matches none
        (ANSWERED_BY_ANOTHER when a different server's answer to it came first)."""
        request = self._waiting.get(correlation)
        if request is None:
            first = self._answered.get(correlation)
            if first is not None and first != server:
                return ANSWERED_BY_ANOTHER
            return "it answers no outstanding request (stale, duplicate or foreign)"
        if request.echo != echo:
            return "its echoed send time is not the request's"
        del self._waiting[correlation]
        self._answered[correlation] = server
        if len(self._answered) > REMEMBERED_ANSWERS:
            self._answered.popitem(last=False)
        if arrived_mono > request.deadline_mono:
            return "it came after the request timed out"
        return request

    def expire(self, now_mono: int) -> int:
        """Give up on requests past their deadline; return how many."""
        late = [key for key, request in self._waiting.items() if request.deadline_mono < now_mono]
        for key in late:
            del self._waiting[key]
        return len(late)

    def abandon(self) -> None:
        """Give up on every request now: an answer to one would be a sample of a round
        its asker has moved on from."""
        self._waiting.clear()

    def next_deadline(self) -> int | None:
        """The earliest deadline of an outstanding request."""
        return min((r.deadline_mono for r in self._waiting.values()), default=None)
