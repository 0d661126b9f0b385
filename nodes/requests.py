"""A Cristian client's outstanding requests: what ties an answer to its request.

An answer counts only if its correlation data names an outstanding request, its echo is
that request's send time, and it came before the request's deadline; it is then taken out,
so a duplicate of it matches nothing.  A mismatched echo leaves the request outstanding,
since the genuine answer may still come.
"""

from dataclasses import dataclass, replace


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

    def take(self, correlation: bytes, echo: int, arrived_mono: int) -> Outstanding | str:
        """The request this answer is for, or why the answer matches none."""
        request = self._waiting.get(correlation)
        if request is None:
            return "it answers no outstanding request (stale, duplicate or foreign)"
        if request.echo != echo:
            return "its echoed send time is not the request's"
        del self._waiting[correlation]
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
