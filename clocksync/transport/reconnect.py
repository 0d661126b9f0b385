"""When to try the broker again, and what to say about it.

After a broker outage every participant should be back within a round of the broker's
return, and a fleet should not come back in lockstep.  So the first retry comes within a
quarter second, later ones double up to a one-second cap, each wait drawn at random from
half to all of it (jitter); the count restarts whenever a connection reaches the broker.
A refusal that will not go away by itself (credentials, authorization, version,
certificate) waits PERMANENT_S instead.  The log says the first failure and any change of
reason, then only every LOG_EVERY_S while it lasts, with the number of attempts.

A connection the broker drops soon after accepting it, again and again, is taken over by
another client with the same client id (Mosquitto says nothing else): after TAKEOVERS such
drops in a row, the link says so and waits PERMANENT_S, so that two processes started with
one name do not knock each other off every second.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_S = 0.25
CAP_S = 1.0
PERMANENT_S = 30.0
LOG_EVERY_S = 30.0
SHORT_LIVED_S = 5.0
TAKEOVERS = 3


@dataclass
class Reconnect:
    """The retry schedule of one link; times are monotonic seconds."""

    jitter: Callable[[], float] = random.random
    _attempts: int = 0
    _short_lived: int = 0
    _last_logged: tuple[str, float] | None = field(default=None, repr=False)
    failures: int = 0

    def delay_s(self, permanent: bool) -> float:
        """How long to wait before the next attempt, after a failure."""
        self.failures += 1
        if permanent:
            return PERMANENT_S
        base = min(CAP_S, FIRST_S * 2.0 ** min(self._attempts, 8))
        self._attempts += 1
        return base * (0.5 + self.jitter() / 2)

    def reached(self) -> None:
        """A connection reached the broker: start the schedule afresh."""
        self._attempts = 0

    def connected(self) -> None:
        self.failures = 0
        self._last_logged = None

    def dropped(self, after_s: float) -> bool:
        """A ready connection was dropped `after_s` after it became ready; say whether the
        drops look like another client taking this client id over."""
        self._short_lived = self._short_lived + 1 if after_s < SHORT_LIVED_S else 0
        return self._short_lived >= TAKEOVERS

    def worth_logging(self, reason: str, now_s: float) -> bool:
        """Whether to log this failure: the first, a new reason, or a reminder."""
        last = self._last_logged
        if last is not None and last[0] == reason and now_s - last[1] < LOG_EVERY_S:
            return False
        self._last_logged = (reason, now_s)
        return True
