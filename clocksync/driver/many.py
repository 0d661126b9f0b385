"""Many roles, each over its own link, on one thread: a gateway keeping the clocks of the
devices behind it, or a benchmark's swarm of thousands of nodes from a few processes.

One epoll selector waits on every link's socket and one heap holds every role's next
wake-up; a link is stepped (clocksync.driver.runner.Driver.step, without waiting) when its
socket is readable or its role's timer is due.  Links connect at `connect_per_s` at most,
so that a gateway starting thousands does not flood the broker with connections at once,
and every link is stepped at least every SWEEP_S for its keep-alive and its retries.
"""

import heapq
import selectors
import time
from collections.abc import Sequence

from clocksync.core.clock import NS_PER_S
from clocksync.driver.runner import MAX_WAIT_S, Driver, StopFlag

SWEEP_S = 5.0
"""Every link is stepped at least this often: its keep-alive (15 s, with the broker's 1.5
grace) then never lapses, however quiet the link."""
RETRY_NS = NS_PER_S // 4
"""How soon a link that is not connected is stepped again (its own backoff decides more)."""


class Multiplexer:
    """Runs `drivers` (each a role over its own link) until stopped."""

    def __init__(
        self, drivers: Sequence[Driver], *, connect_per_s: float = 500.0, gather_s: float = 0.0
    ) -> None:
        """`gather_s`: once something is ready, wait this long for more before stepping:
        fewer wake-ups for the same work.  Each link's arrival time stays exact while it
        receives one message at a time (a fleet node does): a read that brings several
        stamps them all with the last one's arrival."""
        self.drivers = list(drivers)
        self._gather_s = gather_s
        self._selector = selectors.DefaultSelector()
        self._fds: list[int | None] = [None] * len(self.drivers)
        self._due: list[int] = [0] * len(self.drivers)
        self._stepped: list[int] = [0] * len(self.drivers)
        self._timers: list[tuple[int, int]] = []
        start = time.monotonic_ns()
        for index in range(len(self.drivers)):
            self._schedule(index, start + round(index * NS_PER_S / connect_per_s))
        self._next_sweep = start + round(SWEEP_S * NS_PER_S)
        self._swept = 0

    def run(self, stop: StopFlag) -> None:
        """Serve until `stop` is requested, then say goodbye on every link."""
        while not stop.requested:
            self.step(MAX_WAIT_S)
        for driver in self.drivers:
            driver.close()
        self._selector.close()

    def step(self, max_wait_s: float) -> list[int]:
        """Step every link that is due or readable, waiting up to `max_wait_s` for one;
        return which were stepped."""
        stepped = []
        now = time.monotonic_ns()
        while self._timers and self._timers[0][0] <= now:
            at, index = heapq.heappop(self._timers)
            if at == self._due[index]:
                stepped.append(self._step(index))
        wait_s = max_wait_s
        if self._timers:
            wait_s = min(wait_s, max(0.0, (self._timers[0][0] - time.monotonic_ns()) / NS_PER_S))
        ready = self._selector.select(wait_s)
        if ready and self._gather_s:
            time.sleep(self._gather_s)
            ready = self._selector.select(0)
        for key, _ in ready:
            stepped.append(self._step(key.data))
        if time.monotonic_ns() >= self._next_sweep:
            stepped += self._sweep()
        return stepped

    def _sweep(self) -> list[int]:
        """Step the links of a tenth of the drivers that were not stepped for SWEEP_S, so
        that each is stepped every SWEEP_S at least; a busy link is never swept."""
        count = len(self.drivers)
        share = max(1, count // 10)
        indices = [(self._swept + offset) % count for offset in range(min(share, count))]
        self._swept = (self._swept + share) % max(1, count)
        now = time.monotonic_ns()
        self._next_sweep = now + round(SWEEP_S * NS_PER_S / 10)
        idle = now - round(SWEEP_S * NS_PER_S)
        return [self._step(index) for index in indices if self._stepped[index] <= idle]

    def _step(self, index: int) -> int:
        driver = self.drivers[index]
        driver.step(0.0)
        self._stepped[index] = time.monotonic_ns()
        fd = driver.link.fileno()
        if fd != self._fds[index]:
            self._forget(self._fds[index], index)
            if fd is not None:
                # A closed socket's number may already serve another link's new one.
                taken = self._selector.get_map().get(fd)
                if taken is not None:
                    self._forget(fd, taken.data)
                self._selector.register(fd, selectors.EVENT_READ, index)
            self._fds[index] = fd
        if driver.link.ready:
            self._schedule(index, driver.wake_at)
        else:
            self._schedule(index, time.monotonic_ns() + RETRY_NS)
        return index

    def _forget(self, fd: int | None, index: int) -> None:
        key = None if fd is None else self._selector.get_map().get(fd)
        if key is not None and key.data == index:
            self._selector.unregister(key.fd)
            self._fds[index] = None

    def _schedule(self, index: int, at: int) -> None:
        if at != self._due[index]:
            self._due[index] = at
            heapq.heappush(self._timers, (at, index))
