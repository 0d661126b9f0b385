"""Real links with injected delay: a TCP proxy between one participant and the broker.

Network emulation qdiscs are not available everywhere, so a participant reaches the broker
through a `DelayLink`: a proxy on loopback that holds every chunk it relays for a delay drawn
from the path's distribution for that direction (clocksync.sim.delays, the simulator's own
paths), in order, as TCP delivers: a chunk never overtakes the one before it.  A chunk
"lost" (with the path's loss probability) comes late by TCP's minimum retransmission
timeout instead, since TCP loses nothing it does not resend.

Each direction of each connection is a reader thread and a writer thread; the writer sleeps
until a chunk's release time.  Timers here are good to some tens of microseconds, which is
the floor of what a link can be made to look like.
"""

import contextlib
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from clocksync.sim.delays import PATHS, Delay, Exponential, Path
from clocksync.transport.url import BrokerUrl

RETRANSMIT_S = 0.2
"""Linux's minimum TCP retransmission timeout: what a lost segment costs."""
CHUNK = 65536
SCENARIOS: dict[str, Path] = {
    "loopback": Path(),
    "lan": PATHS["lan"],
    "wifi": PATHS["wifi"],
    # Busy Wi-Fi as the accuracy targets state it: 2 ms each way plus exponential jitter
    # of mean 2 ms each way.
    "busy": Path.symmetric(Exponential(2e-3, 2e-3)),
    "wan": PATHS["wan"],
}
"""The links the README's real-network table runs, by name."""


def floor_s(path: Path, rng: random.Random, samples: int = 20_000) -> float:
    """Half the path's asymmetry: the error no exchange over it can get below, estimated
    as half the difference of the two directions' lowest delays."""
    up = min(path.up.sample(rng) for _ in range(samples))
    down = min(path.down.sample(rng) for _ in range(samples))
    return abs(up - down) / 2 / 1e9


@dataclass
class _Direction:
    """One way of one connection: chunks read from `source`, released to `sink`."""

    source: socket.socket
    sink: socket.socket
    delay: Delay
    loss: float
    rng: random.Random

    def run(self) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
        writer = threading.Thread(target=self._write, args=(chunks,), daemon=True)
        writer.start()
        released = 0.0
        with contextlib.suppress(OSError):
            while data := self.source.recv(CHUNK):
                held = self.delay.sample(self.rng) / 1e9
                if self.rng.random() < self.loss:
                    held += RETRANSMIT_S
                released = max(released, time.monotonic() + held)
                chunks.put((released, data))
        chunks.put((released, b""))
        writer.join()

    def _write(self, chunks: "queue.Queue[tuple[float, bytes]]") -> None:
        while True:
            release, data = chunks.get()
            wait = release - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(data)
            except OSError:
                return


class DelayLink:
    """A proxy to `broker` on a free loopback port, delaying as `path` says; `url` is where
    the participant connects.  Seeded, so a run's delays can be drawn again."""

    def __init__(self, broker: BrokerUrl, path: Path, seed: int = 0) -> None:
        self.broker = broker
        self.path = path
        self._rng = random.Random(seed)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> BrokerUrl:
        port: int = self._listener.getsockname()[1]
        return BrokerUrl("127.0.0.1", port, self.broker.username, self.broker.scheme)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.broker.host, self.broker.port))
            except OSError:
                client.close()
                continue
            for end in (client, upstream):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            path, seed = self.path, self._rng.random()
            for source, sink, delay in ((client, upstream, path.up), (upstream, client, path.down)):
                direction = _Direction(source, sink, delay, path.loss, random.Random(seed))
                threading.Thread(target=direction.run, daemon=True).start()
                seed += 1

    def close(self) -> None:
        """Stop accepting and cut every connection, as a link going down would."""
        self._closed.set()
        for end in self._sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def delay_links(
    broker: BrokerUrl, path: Path, count: int, seed: int = 0
) -> Iterator[list[DelayLink]]:
    """`count` links to `broker`, each its own proxy (a participant's own link), closed
    on leaving."""
    links = [DelayLink(broker, path, seed + index) for index in range(count)]
    try:
        yield links
    finally:
        for link in links:
            link.close()
