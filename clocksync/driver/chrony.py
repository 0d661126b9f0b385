"""A participant's time for chronyd, as a reference clock (chrony's `refclock SOCK`), so that
the host's system clock follows the site through chrony's own filtering and discipline, and
clocksync itself never needs the privilege to set a clock.

chronyd binds the socket named in its `refclock SOCK PATH` line; the feed sends it one
datagram a second once the participant's clock is synchronized: the host time of the
sample and the site's time minus it (chrony's "true minus local").
"""

import logging
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from clocksync.core.clock import NS_PER_S, SoftwareClock

log = logging.getLogger(__name__)

SOCK_MAGIC = 0x534F434B
"""'SOCK': chrony drops a sample without it."""
SAMPLE = struct.Struct("@qqdiiii")
"""chrony's struct sock_sample: timeval (seconds, microseconds), offset, pulse, leap, pad,
magic, in the host's native layout."""
INTERVAL_NS = NS_PER_S


def sock_sample(host_ns: int, offset_ns: int) -> bytes:
    """One sample: at host time `host_ns` the reference was `offset_ns` ahead of the host."""
    seconds, rest = divmod(host_ns, NS_PER_S)
    return SAMPLE.pack(seconds, rest // 1000, offset_ns / NS_PER_S, 0, 0, 0, SOCK_MAGIC)


class ChronyFeed:
    """Sends `clock`'s offset from the host to chronyd's SOCK refclock at `path`, once a
    second while `synchronized()` holds.  A chronyd not (yet) listening is logged once per
    outage, and the samples meanwhile are dropped: the participant goes on regardless."""

    def __init__(self, path: Path, clock: SoftwareClock, synchronized: Callable[[], bool]) -> None:
        self.path = path
        self.clock = clock
        self.synchronized = synchronized
        self.sent = 0
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._next_mono = 0
        self._failing = False

    def maybe_send(self, mono: int) -> None:
        """Send a sample if one is due at `mono` (monotonic ns)."""
        if mono < self._next_mono or not self.synchronized():
            return
        self._next_mono = mono + INTERVAL_NS
        offset_ns, host_ns = self.clock.host_offset_ns()
        try:
            self._socket.sendto(sock_sample(host_ns, offset_ns), str(self.path))
        except OSError as error:
            if not self._failing:
                log.warning(
                    "chronyd's refclock socket %s: %s; trying each second", self.path, error
                )
            self._failing = True
            return
        if self._failing:
            log.warning("chronyd's refclock socket %s takes samples again", self.path)
        self._failing = False
        self.sent += 1

    def close(self) -> None:
        self._socket.close()
