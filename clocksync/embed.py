"""The site's time inside an application: a participant run on a thread of its own, whose
clock the application reads.

    from clocksync.embed import SiteClock

    with SiteClock("mqtt://broker.lan", site="manipal-foodie", name="orders-KMC") as clock:
        clock.wait_synchronized(timeout_s=30)
        order.stamped_ns = clock.time_ns()       # the site's time, ns since the epoch
        print(clock.now(), clock.error_bound_s)  # as a UTC datetime; ± seconds, if known

The participant is a full one: it publishes its status and truth signal like any other, a
fleet node (`sync="fleet"`, the default) follows the site's leading master, a Cristian node
(`sync="cristian"`) the site's time servers, and a Berkeley node (`sync="berkeley"`) is
polled by the master.  Its clock slews, so `time_ns` never runs backwards once synchronized;
before that it reads the host's time (plus `offset_s`).
"""

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from clocksync.app.nodes import Sync, node_for
from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.driver.runner import StopFlag, participant_driver
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.signing import Keys
from clocksync.transport.url import BrokerUrl, TlsFiles


class SiteClock:
    """One participant of `site`, named `name`, on its own thread (see the module's text).

    `trust_keys`: take only time sealed by one of these public keys; `signing_key`: seal
    what it sends (a Berkeley node's replies, a fleet node's reports); `chrony_sock`: feed
    its time to chronyd's `refclock SOCK` too.  `interval_s` is a Cristian node's time
    between syncs.
    """

    def __init__(
        self,
        broker: str | BrokerUrl,
        *,
        site: str,
        name: str,
        sync: Sync = "fleet",
        interval_s: float = 1.0,
        status_interval_s: float = 1.0,
        protocol: MqttVersion = MqttVersion.V5,
        tls: TlsFiles | None = None,
        password: str | None = None,
        trust_keys: Sequence[Path] = (),
        signing_key: Path | None = None,
        chrony_sock: Path | None = None,
        offset_s: float = 0.0,
    ) -> None:
        url = broker if isinstance(broker, BrokerUrl) else BrokerUrl.parse(broker)
        self.participant = node_for(
            sync,
            name=name,
            site=site,
            clock=SoftwareClock(offset_s=offset_s),
            status_interval_s=status_interval_s,
            protocol=protocol,
            keys=Keys.load(signing_key, trust_keys),
            interval_s=interval_s,
        )
        self._driver = participant_driver(
            self.participant, url, protocol, tls, password=password, chrony_sock=chrony_sock
        )
        self._stop = StopFlag()
        self._thread = threading.Thread(
            target=self._driver.run, args=(self._stop,), name=f"clocksync-{name}", daemon=True
        )

    def start(self) -> "SiteClock":
        """Connect and keep the clock from now on, in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Say goodbye (offline status) and disconnect; waits for the thread."""
        self._stop.requested = True
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> "SiteClock":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def synchronized(self) -> bool:
        """Whether the clock has taken the site's time (a first correction applied)."""
        return self.participant.synchronized

    def wait_synchronized(self, timeout_s: float) -> bool:
        """Wait until synchronized or `timeout_s` passes; say which."""
        deadline = time.monotonic() + timeout_s
        while not self.synchronized:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def time_ns(self) -> int:
        """The site's time now, in ns since the Unix epoch (as `time.time_ns`)."""
        return self.participant.clock.reading_now()

    def now(self) -> datetime:
        """The site's time now, as an aware UTC datetime (to the microsecond)."""
        seconds, nanoseconds = divmod(self.time_ns(), NS_PER_S)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanoseconds // 1000)

    def offset_from_host_s(self) -> float:
        """The site's time minus this host's system clock, now."""
        return (self.time_ns() - time.time_ns()) / NS_PER_S

    @property
    def error_bound_s(self) -> float | None:
        """How far the clock may be off the site's time now, where the participant knows it
        (a Cristian node, a fleet node: its last exchange's bound, grown since)."""
        return self.participant.error_bound_s()
