"""Virtual time: what happens when, nothing happening in between.

Events at the same instant run in the order they were scheduled, so a run depends only on
its inputs and its seed.
"""

import heapq
from collections.abc import Callable


class Scheduler:
    """A clock that jumps from event to event; instants are nanoseconds."""

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._order = 0

    def at(self, when_ns: int, action: Callable[[], None]) -> None:
        """Run `action` at `when_ns` (at once, after what is due now, if that is past)."""
        self._order += 1
        heapq.heappush(self._queue, (max(when_ns, self.now), self._order, action))

    def run_until(self, end_ns: int) -> None:
        """Run every event due up to `end_ns`, then stand at `end_ns`."""
        queue = self._queue
        while queue and queue[0][0] <= end_ns:
            when, _, action = heapq.heappop(queue)
            self.now = when
            action()
        self.now = max(self.now, end_ns)
