"""A passive watcher of one site: the latest status of every participant and every round
summary.  The demo, the tests and the benchmarks judge accuracy through it, from the truth
signal the participants publish, never from what the master believes."""

import bisect
import itertools
import logging
import os
import time
from collections.abc import Callable

from clocksync.protocol.enums import MqttVersion, State
from clocksync.protocol.envelope import Inbound
from clocksync.protocol.messages import MessageError, RoundSummary, Status
from clocksync.protocol.topics import Topics
from clocksync.transport.link import MqttLink
from clocksync.transport.url import BrokerUrl, TlsFiles

log = logging.getLogger(__name__)
_instances = itertools.count()


class Observer:
    """Subscribes to every status and to the round summaries of a site."""

    def __init__(
        self,
        broker: BrokerUrl,
        site: str,
        *,
        keep_history: bool = False,
        tls: TlsFiles | None = None,
        password: str | None = None,
        protocol: MqttVersion = MqttVersion.V5,
    ) -> None:
        self.topics = Topics(site)
        self.statuses: dict[str, Status] = {}
        self.history: dict[str, list[Status]] | None = {} if keep_history else None
        self.rounds: list[RoundSummary] = []
        self.round_arrivals: list[float] = []
        """When each of `rounds` arrived, in monotonic seconds."""
        self.link = MqttLink(
            broker,
            client_id=f"clocksync-observer-{os.getpid()}-{next(_instances)}",
            subscriptions=[self.topics.all_status, self.topics.round],
            tls=tls,
            password=password,
            protocol=protocol,
        )

    def _handle(self, message: Inbound) -> None:
        if not message.payload:  # a retained message deleted
            self.statuses.pop(self.topics.name_in(message.topic) or "", None)
            return
        try:
            if message.topic == self.topics.round:
                self.rounds.append(RoundSummary.decode(message.payload))
                self.round_arrivals.append(time.monotonic())
            else:
                status = Status.decode(message.payload)
                self.statuses[status.name] = status
                if self.history is not None:
                    self.history.setdefault(status.name, []).append(status)
        except MessageError as error:
            log.warning("dropped a bad message on %s: %s", message.topic, error)

    def pump(self, seconds: float) -> None:
        """Handle traffic for `seconds`."""
        self.wait_for(lambda: False, seconds)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Handle traffic until `condition()` holds or `timeout_s` passes; say which."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for event in self.link.poll(min(remaining, 0.05)):
                if isinstance(event, Inbound):
                    self._handle(event)
        return True

    def wait_for_rounds(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` round summaries have arrived in all."""
        return self.wait_for(lambda: len(self.rounds) >= count, timeout_s)

    def true_offsets(self) -> dict[str, float]:
        """Each online participant's clock minus its host clock, as it last reported."""
        return {
            name: status.host_offset_s
            for name, status in self.statuses.items()
            if status.state == State.ONLINE and status.host_offset_s is not None
        }

    def distances_from(self, reference: str) -> dict[str, float]:
        """|participant - reference| for every other online participant, from the truth
        signal; empty until the reference has reported."""
        truth = self.true_offsets()
        if reference not in truth:
            return {}
        return {
            name: abs(offset - truth[reference])
            for name, offset in truth.items()
            if name != reference
        }

    def offset_at(self, name: str, host_time: int) -> float | None:
        """A participant's truth offset at `host_time` (ns, host clock), interpolated between
        the two statuses around it; None outside its history.  Needs `keep_history`."""
        around = self._statuses_around(name, host_time)
        if around is None:
            return None
        (before_ns, before), (after_ns, after) = around
        span = after_ns - before_ns
        weight = (host_time - before_ns) / span if span else 0.0
        return before + weight * (after - before)

    def offsets_around(self, name: str, host_time: int) -> tuple[float, float] | None:
        """The lowest and highest truth offset a participant can have had at `host_time`
        (ns, host clock): those of its statuses just before and just after, since a clock
        that slews a correction in between passes only through the values between them.
        None outside its history.  Needs `keep_history`."""
        around = self._statuses_around(name, host_time)
        if around is None:
            return None
        (_, before), (_, after) = around
        return min(before, after), max(before, after)

    def _statuses_around(
        self, name: str, host_time: int
    ) -> tuple[tuple[int, float], tuple[int, float]] | None:
        """(host time, truth offset) of a participant's statuses just before and after
        `host_time`, or None."""
        history = (self.history or {}).get(name, [])
        times = [status.host_time or 0 for status in history]
        index = bisect.bisect_left(times, host_time)
        if index == 0 or index == len(history):
            return None
        before, after = history[index - 1].host_offset_s, history[index].host_offset_s
        if before is None or after is None:
            return None
        return (times[index - 1], before), (times[index], after)

    def close(self) -> None:
        self.link.close([])
