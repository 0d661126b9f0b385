"""The classroom Berkeley, for comparison: absolute times, no round-trip compensation.

    .venv/bin/python bench/naive_berkeley.py [--rounds 60]

The master asks every node for its time; each node answers with its clock's reading; the
master takes each answer as that node's offset at the moment it arrives (so the answer's
whole trip counts as offset), averages them with its own clock, and sends each node the
absolute time to set, which the node sets on arrival (so that trip is lost too).  As the
textbook exercise does it, over the same broker as clocksync: the five participants in one
process, each its own paho client on its own network thread (TCP_NODELAY set, as clocksync
sets it), the clocks clocksync's own software clocks (±5 s, ±100 ppm), the truth read
from them directly.
"""

import argparse
import json
import random
import socket
import threading
import time
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from clocksync.core.clock import NS_PER_S, Discipline, SoftwareClock
from clocksync.sim.scenarios import LINES
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.transport.url import BrokerUrl

PREFIX = "naive"
ALWAYS_STEP = Discipline(step_threshold_s=1e-9, first_updates=10**9, max_change_s=1e9)


def _client(name: str, broker: BrokerUrl) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"naive-{name}", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(broker.host, broker.port)
    # Without this, Nagle's algorithm holds small packets for the peer's delayed ACK (40 ms):
    # the comparison is with the method, not with a slow socket.
    connection = client.socket()
    assert isinstance(connection, socket.socket)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    return client


class NaiveNode:
    """Answers "what time is it?" with its reading; sets the time it is told."""

    def __init__(self, name: str, broker: BrokerUrl, clock: SoftwareClock) -> None:
        self.name, self.clock = name, clock
        self.lock = threading.Lock()
        self.client = _client(name, broker)
        self.client.on_message = self._on_message
        self.client.subscribe([(f"{PREFIX}/ask", 0), (f"{PREFIX}/set/{name}", 0)])

    def _on_message(self, client: mqtt.Client, _: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            if message.topic == f"{PREFIX}/ask":
                client.publish(f"{PREFIX}/time/{self.name}", str(self.clock.now_ns()))
            else:
                self.clock.correct(int(message.payload) - self.clock.now_ns())


class NaiveMaster:
    """Collects readings for half a second, then sets everyone to the average."""

    def __init__(self, broker: BrokerUrl, clock: SoftwareClock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.offsets: dict[str, int] = {}
        self.client = _client("master", broker)
        self.client.on_message = self._on_message
        self.client.subscribe(f"{PREFIX}/time/+")

    def _on_message(self, _: mqtt.Client, __: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            name = message.topic.rsplit("/", 1)[1]
            self.offsets[name] = int(message.payload) - self.clock.now_ns()

    def round(self) -> None:
        with self.lock:
            self.offsets.clear()
        self.client.publish(f"{PREFIX}/ask", b"")
        time.sleep(0.5)
        with self.lock:
            average = sum(self.offsets.values()) // (len(self.offsets) + 1)
            now = self.clock.now_ns()
            for name in self.offsets:
                self.client.publish(f"{PREFIX}/set/{name}", str(now + average))
            self.clock.correct(average)


def run(broker: BrokerUrl, rounds: int, seed: int = 1) -> list[float]:
    """|node - master| of every node, half a second after each round from the third on."""
    rng = random.Random(seed)

    def clock() -> SoftwareClock:
        offset, drift = rng.uniform(-5, 5), rng.uniform(-100, 100)
        return SoftwareClock(offset_s=offset, drift_ppm=drift, discipline=ALWAYS_STEP)

    master = NaiveMaster(broker, clock())
    nodes = [NaiveNode(name, broker, clock()) for name in LINES]
    errors = []
    try:
        time.sleep(1.0)
        for number in range(rounds):
            master.round()
            time.sleep(0.5)
            if number >= 2:
                with master.lock:
                    reference = master.clock.host_offset_ns()[0]
                for node in nodes:
                    with node.lock:
                        errors.append(abs(node.clock.host_offset_ns()[0] - reference) / NS_PER_S)
    finally:
        for client in [master.client, *(node.client for node in nodes)]:
            client.loop_stop()
            client.disconnect()
    return errors


def summary(errors: Sequence[float]) -> str:
    ordered = sorted(errors)
    p50, p99 = (ordered[round(q * (len(ordered) - 1))] * 1e6 for q in (0.5, 0.99))
    return json.dumps({"n": len(ordered), "p50_us": round(p50, 1), "p99_us": round(p99, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    with LocalMosquitto() as broker:
        print(summary(run(broker.url, args.rounds)))


if __name__ == "__main__":
    main()
