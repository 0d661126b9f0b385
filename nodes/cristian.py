"""A node disciplined by Cristian's algorithm: it asks the site's time server every interval
instead of waiting for Berkeley rounds.

Each interval it makes a burst of exchanges (see nodes.asker.Burst) and corrects its clock
by the lowest-delay one's offset, slewed like a Berkeley node's corrections; its status
carries the truth signal and the error bound of the last correction.
"""

import logging

from clocksync.clock import NS_PER_S, SoftwareClock
from clocksync.participant import Participant
from clocksync.transport import BrokerUrl, Inbound
from nodes.asker import Asker, Burst

log = logging.getLogger(__name__)


class CristianNode(Participant):
    """A device that keeps the time server's clock: the Manipal Buddy phone or laptop."""

    role = "node"
    sync = "cristian"

    def __init__(
        self,
        *,
        name: str,
        site: str,
        broker: BrokerUrl,
        clock: SoftwareClock,
        interval_s: float,
        samples: int,
        timeout_s: float,
        status_interval_s: float = 1.0,
        protocol: str = "5",
    ) -> None:
        super().__init__(
            name=name,
            site=site,
            broker=broker,
            clock=clock,
            status_interval_s=status_interval_s,
            protocol=protocol,
        )
        self.asker = Asker(self.link, clock, self.topics, name, timeout_s)
        self.samples = samples
        self._interval_ns = round(interval_s * NS_PER_S)
        self._burst: Burst | None = None
        self._next_burst = 0

    def subscriptions(self) -> list[str]:
        return [self.topics.cristian_reply(self.name)]

    def handle(self, message: Inbound) -> None:
        if self._burst is None:
            log.warning("dropped a time response on %s: no request is outstanding", message.topic)
            return
        self._burst.take(message)

    def tick(self, mono: int) -> int:
        burst = self._burst
        if burst is None:
            if mono < self._next_burst:
                return self._next_burst
            burst = self._burst = Burst(self.asker, self.samples)
            self._next_burst = mono + self._interval_ns
        burst.step()
        if burst.done:
            self._finish(burst)
            return self._next_burst
        return min(mono + self.asker.timeout_ns, self._next_burst)

    def _finish(self, burst: Burst) -> None:
        self._burst = None
        best = burst.best()
        if best is None:
            log.warning("no answer from a time server on %s", self.topics.cristian_request)
            return
        sample = best.sample
        log.info(
            "offset %+.6f s ± %.6f s (delay %.6f s, %d of %d answered)",
            sample.offset_s,
            sample.error_bound_s,
            sample.delay_s,
            len(burst.answers),
            burst.wanted,
        )
        self.apply_correction(sample.offset_s, best.adjusted_then, sample.error_bound_s)
