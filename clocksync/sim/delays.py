"""Delay distributions and network paths.

A path is a participant's link to the broker: each direction has its own delay
distribution (so a path can be asymmetric), messages may be lost, and they arrive in the
order they were sent (as over TCP) unless the path reorders them.  Constructors take
seconds; samples are nanoseconds, never negative.
"""

import math
import random
from dataclasses import dataclass, field
from typing import Protocol


class Delay(Protocol):
    def sample(self, rng: random.Random) -> int:
        """One delay, in ns."""
        ...


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


@dataclass(frozen=True)
class Fixed:
    seconds: float = 0.0

    def sample(self, rng: random.Random) -> int:
        return _ns(self.seconds)


@dataclass(frozen=True)
class Jitter:
    """`base` plus a uniform jitter of up to `spread`."""

    base: float
    spread: float

    def sample(self, rng: random.Random) -> int:
        return _ns(self.base + rng.random() * self.spread)


@dataclass(frozen=True)
class Exponential:
    """`base` plus an exponential jitter of mean `mean`: most messages quick, a few slow."""

    base: float
    mean: float

    def sample(self, rng: random.Random) -> int:
        return _ns(self.base + rng.expovariate(1 / self.mean)) if self.mean else _ns(self.base)


@dataclass(frozen=True)
class Pareto:
    """`base` plus a heavy-tailed (Pareto) jitter with minimum `scale` and tail index
    `shape`, capped at `cap`: now and then a message is very late (a busy Wi-Fi channel,
    a retransmission)."""

    base: float
    scale: float
    shape: float = 1.5
    cap: float = 1.0

    def sample(self, rng: random.Random) -> int:
        jitter = self.scale * (rng.paretovariate(self.shape) - 1)
        return _ns(self.base + min(jitter, self.cap))


@dataclass(frozen=True)
class Path:
    """A participant's link to the broker: `up` (to the broker) and `down` (from it)."""

    up: Delay = field(default_factory=Fixed)
    down: Delay = field(default_factory=Fixed)
    loss: float = 0.0
    reorder: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.loss < 1.0 and math.isfinite(self.loss)):
            raise ValueError("loss must be in [0, 1)")

    @classmethod
    def symmetric(cls, delay: Delay, loss: float = 0.0) -> "Path":
        return cls(delay, delay, loss)


PATHS: dict[str, Path] = {
    # Loopback on a quiet host: tens of microseconds, a little jitter.
    "loopback": Path.symmetric(Exponential(20e-6, 5e-6)),
    # A wired LAN: 100 µs each way, ±100 µs of jitter.
    "lan": Path.symmetric(Jitter(100e-6, 200e-6)),
    # Busy Wi-Fi: 2 ms each way plus heavy-tailed jitter, 1 % loss.
    "wifi": Path.symmetric(Pareto(2e-3, 1e-3, shape=1.5), loss=0.01),
    # A WAN: 30 ms, the way there 2 ms longer than the way back.
    "wan": Path(Exponential(31e-3, 0.2e-3), Exponential(29e-3, 0.2e-3)),
}
"""Named paths for scenarios; the README's table runs each."""
