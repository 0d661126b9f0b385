"""A node disciplined by Cristian's algorithm: it asks the site's time server every interval
instead of waiting for Berkeley rounds.

Each interval it makes a burst of exchanges (see clocksync.nodes.asker.Burst) and corrects
its clock by the lowest-delay one's offset, slewed like a Berkeley node's corrections; once
its frequency is known, by the intersection of the recent exchanges with that server
instead (clocksync.core.intervals).  Its status carries the truth signal and the error
bound of the last correction.
"""

import logging
import secrets
from collections.abc import Callable, Hashable

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.core.intervals import source_of
from clocksync.nodes.asker import Asker, Burst
from clocksync.protocol.enums import MqttVersion, RoleKind, SyncMode
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.signing import NO_KEYS, Keys
from clocksync.roles.participant import Measured, Participant

log = logging.getLogger(__name__)


class CristianNode(Participant):
    """A device that keeps the time server's clock: the Manipal Buddy phone or laptop."""

    kind = RoleKind.NODE
    sync = SyncMode.CRISTIAN

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        interval_s: float,
        samples: int,
        timeout_s: float,
        status_interval_s: float = 1.0,
        protocol: MqttVersion = MqttVersion.V5,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        keys: Keys = NO_KEYS,
    ) -> None:
        super().__init__(
            name=name, site=site, clock=clock, status_interval_s=status_interval_s, keys=keys
        )
        self.asker = Asker(
            clock,
            self.topics,
            name,
            timeout_s=timeout_s,
            protocol=protocol,
            random_bytes=random_bytes,
            trusted=keys.trusted,
        )
        self.samples = samples
        self._interval_ns = round(interval_s * NS_PER_S)
        self._burst: Burst | None = None
        self._next_burst = 0

    def subscriptions(self) -> list[str]:
        return [self.asker.reply_topic]

    def handle(self, message: Inbound) -> list[Publish]:
        burst = self._burst
        if burst is None:
            log.warning("dropped a time response on %s: no request is outstanding", message.topic)
            return []
        sends = burst.take(message)
        if burst.done:
            self.work_now()
        return sends

    def sent(self, tag: Hashable, mono: int | None) -> None:
        self.asker.sent(tag, mono)

    def tick(self, mono: int) -> tuple[list[Publish], int]:
        burst = self._burst
        if burst is None:
            if mono < self._next_burst:
                return [], self._next_burst
            burst = self._burst = Burst(self.asker, self.samples)
            self._next_burst = mono + self._interval_ns
        sends = burst.step()
        if burst.done:
            self._finish(burst)
            return sends, self._next_burst
        # The burst under way waits for its answer or its timeout, even past the next
        # interval: waking for the interval would only spin.
        deadline = burst.next_deadline()
        return sends, mono + self.asker.timeout_ns if deadline is None else deadline + 1

    def _finish(self, burst: Burst) -> None:
        self._burst = None
        best = burst.best()
        if best is None:
            log.warning("no answer from a time server on %s", self.topics.cristian_request)
            return
        log.info(
            "offset %+.6f s ± %.6f s (delay %.6f s, %d of %d answered)",
            best.offset_s,
            best.error_bound_s,
            best.delay_s,
            len(burst.samples),
            burst.wanted,
        )
        self.apply_correction(
            Measured(
                best.offset_s,
                best.adjusted_ns,
                best.arrived_mono,
                best.delay_s,
                best.error_bound_s,
                evidence=tuple(burst.samples),
                source=source_of(best),
            )
        )
