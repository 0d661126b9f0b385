"""A Cristian client on an MQTT link of its own: `clocksync ask`, the tests and the
benchmarks.  Several can run from one thread (`run_bursts`), each on its own connection."""

import itertools
import os
import time

from clocksync.core.clock import SoftwareClock
from clocksync.driver.runner import Driver, client_id, link_for
from clocksync.nodes.asker import Burst, Inquirer
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.signing import TrustedKeys
from clocksync.transport.url import BrokerUrl, TlsFiles

PUMP_S = 0.01
_instances = itertools.count()


class CristianClient:
    """An Inquirer driven over its own connection.  Its client id adds the process id and a
    counter to the usual one, so a client never takes over a node's connection."""

    def __init__(
        self,
        broker: BrokerUrl,
        site: str,
        name: str,
        clock: SoftwareClock,
        *,
        timeout_s: float = 1.0,
        protocol: MqttVersion = MqttVersion.V5,
        trusted: TrustedKeys | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.clock = clock
        self.inquirer = Inquirer(
            name=name,
            site=site,
            clock=clock,
            timeout_s=timeout_s,
            protocol=protocol,
            trusted=trusted,
        )
        unique = f"{client_id(site, name)}-{os.getpid()}-{next(_instances)}"
        self.link = link_for(self.inquirer, broker, unique, protocol, tls)
        self.driver = Driver(self.inquirer, self.link)

    @property
    def burst(self) -> Burst | None:
        return self.inquirer.burst

    def start(self, samples: int) -> Burst:
        self.driver.perform(self.inquirer.start(samples))
        burst = self.inquirer.burst
        assert burst is not None
        return burst

    def pump(self, timeout_s: float = 0.0) -> None:
        self.driver.step(timeout_s)

    def close(self) -> None:
        self.driver.close()


def run_bursts(clients: list[CristianClient], samples: int, timeout_s: float) -> None:
    """A burst on every client at once, until all are done or `timeout_s` passes; clients
    must be connected."""
    bursts = [client.start(samples) for client in clients]
    deadline = time.monotonic() + timeout_s
    wait_s = PUMP_S if len(clients) == 1 else 0.0
    while not all(burst.done for burst in bursts) and time.monotonic() < deadline:
        for client in clients:
            client.pump(wait_s)
