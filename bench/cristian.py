"""Cristian over MQTT on loopback: round trips beside plain paho, errors from the truth
signal, and one time server's throughput.

    .venv/bin/python bench/cristian.py [--exchanges 2000] [--clients 50] [--requests 400]

1. Round trip: blocks of exchanges alternate, in the same run through the same broker,
   between a clocksync client asking `clocksync timeserver` and a plain paho 2 echo (a
   requester and a responder process, each on paho's own network thread, as paho's
   examples do).  Prints p50/p99 of each.
2. Error: |offset - truth| of every clocksync sample and of the lowest-delay sample of
   each 8 (what `clocksync ask` reports), the truth being the server's truth signal minus
   the client's; the median signed error of those (a bias, not noise, shows here); each
   hop's one-way delay by the truth (there: t2 - t1 less the true offset; back: t4 - t3
   plus it), whose difference is twice the bias; and how many samples lay within their
   own error bound.
3. Throughput: `--clients` mosquitto_pub processes flood the server with `--requests`
   MQTT 5 requests each; a mosquitto_sub counts the answers.  Prints answers per second,
   from the launch of the first client to the last answer, and the server's CPU time per
   answer.  Requests that wait in the
   broker longer than their 1 s expiry are dropped by it, by design.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from fleet import cpu_seconds
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.driver.client import CristianClient, run_bursts
from clocksync.protocol.messages import TimeRequest
from clocksync.protocol.topics import Topics
from clocksync.sim.scenarios import percentile
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes
from clocksync.transport.url import BrokerUrl

SITE = "bench"
BLOCK = 100
ECHO_REQUEST, ECHO_REPLY = "bench/echo/request", "bench/echo/reply"


def paho_client(name: str) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
    )


def echo_responder(broker: BrokerUrl) -> None:
    """The plain paho responder: every request straight back, from paho's thread."""
    client = paho_client("bench-echo-responder")

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        client.publish(ECHO_REPLY, message.payload)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(ECHO_REQUEST)
    client.connect(broker.host, broker.port)
    client.loop_forever()


class EchoRequester:
    """The plain paho requester: publish, wait for the echo on an event, time both ends."""

    def __init__(self, broker: BrokerUrl) -> None:
        self.client = paho_client("bench-echo-requester")
        self.answered = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_message = lambda *_: self.answered.set()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(ECHO_REPLY)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def round_trips(self, count: int) -> list[float]:
        rtts = []
        for _ in range(count):
            self.answered.clear()
            start = time.perf_counter()
            self.client.publish(ECHO_REQUEST, b"x" * 100)
            if self.answered.wait(1.0):
                rtts.append(time.perf_counter() - start)
        return rtts

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def round_trips_and_errors(broker: BrokerUrl, exchanges: int, observer: Observer) -> None:
    responder = subprocess.Popen(
        [sys.executable, __file__, "--echo-responder", str(broker)], cwd=Path(__file__).parent
    )
    requester = EchoRequester(broker)
    client = CristianClient(broker, SITE, "phone", SoftwareClock(offset_s=-2.5))
    assert client.link.wait_until_ready(10)
    echo_rtts: list[float] = []
    samples = []
    try:
        time.sleep(1.0)
        for _ in range(exchanges // BLOCK):
            echo_rtts += requester.round_trips(BLOCK)
            run_bursts([client], BLOCK, timeout_s=60)
            assert client.burst is not None
            samples += client.burst.samples
    finally:
        requester.close()
        responder.terminate()
        responder.wait()
    observer.pump(0.5)
    server = observer.statuses["bank"].host_offset_s
    assert server is not None
    truth = server - client.clock.host_offset_ns()[0] / NS_PER_S
    errors = [abs(sample.offset_s - truth) for sample in samples]
    best_of_8 = [
        min(samples[start : start + 8], key=lambda sample: sample.delay_s)
        for start in range(0, len(samples) - 7, 8)
    ]
    within = sum(
        error <= sample.error_bound_s for error, sample in zip(errors, samples, strict=True)
    )
    report("plain paho echo round trip", echo_rtts)
    report("clocksync Cristian round trip", [sample.rtt_s for sample in samples])
    report("clocksync Cristian delay (less server time)", [s.delay_s for s in samples])
    report("|offset - truth|, every sample", errors)
    report("|offset - truth|, best of 8 (as ask)", [abs(s.offset_s - truth) for s in best_of_8])
    bias = statistics.median(sample.offset_s - truth for sample in best_of_8)
    print(f"offset - truth, median of the best of 8: {bias * 1e6:+.1f} µs")
    truth_ns = truth * NS_PER_S
    report(
        "there, by the truth (t2 - t1 - truth)",
        [(s.exchange.t2 - s.exchange.t1 - truth_ns) / NS_PER_S for s in samples],
    )
    report(
        "back, by the truth (t4 - t3 + truth)",
        [(s.exchange.t4 - s.exchange.t3 + truth_ns) / NS_PER_S for s in samples],
    )
    report("error bound", [sample.error_bound_s for sample in samples])
    print(f"bound held in {within} of {len(samples)} samples ({100 * within / len(samples):.2f} %)")
    client.close()


def report(what: str, seconds: list[float]) -> None:
    micro = [value * 1e6 for value in seconds]
    print(
        f"{what:45s} p50 {percentile(micro, 0.5):8.1f} µs  p99 {percentile(micro, 0.99):8.1f} µs"
        f"  (n={len(micro)}, mean {statistics.fmean(micro):.1f})"
    )


def throughput(
    broker: BrokerUrl, server_pid: int, clients: int, requests: int
) -> tuple[int, float, float]:
    """Flood the server; print and return the answers, its CPU seconds, and the span."""
    topics = Topics(SITE)
    mosquitto_pub, mosquitto_sub = (
        shutil.which(name) or f"/usr/bin/{name}" for name in ("mosquitto_pub", "mosquitto_sub")
    )
    connection = ["-h", broker.host, "-p", str(broker.port), "-V", "5"]
    counter = subprocess.Popen(
        [
            mosquitto_sub,
            *connection,
            "-t",
            f"{topics.prefix}/cristian/reply/#",
            "-F",
            "%U",
            "-W",
            "15",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    cpu_before = cpu_seconds(server_pid)
    started = time.time()
    floods = []
    for index in range(clients):
        name = f"load-{index}"
        payload = TimeRequest(name, time.time_ns()).encode()
        floods.append(
            subprocess.Popen(
                [
                    mosquitto_pub,
                    *connection,
                    "-t",
                    topics.cristian_request,
                    "-m",
                    payload.decode(),
                    "-D",
                    "publish",
                    "response-topic",
                    topics.cristian_reply(name),
                    "-D",
                    "publish",
                    "correlation-data",
                    f"c{index}",
                    "-D",
                    "publish",
                    "message-expiry-interval",
                    "1",
                    "--repeat",
                    str(requests),
                ],
            )
        )
    for flood in floods:
        flood.wait()
    stamps = [float(line) for line in counter.communicate()[0].split()]
    cpu = cpu_seconds(server_pid) - cpu_before
    sent = clients * requests
    span = max(stamps) - started if stamps else float("nan")
    print(
        f"throughput: {clients} clients sent {sent} requests; {len(stamps)} answered "
        f"{span:.2f} s after the first was sent = {len(stamps) / span:.0f} answers/s; server CPU "
        f"{cpu * 1e6 / max(1, len(stamps)):.0f} µs per answer"
    )
    return len(stamps), cpu, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--echo-responder", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_responder:
        echo_responder(BrokerUrl.parse(args.echo_responder))
        return
    with LocalMosquitto() as broker:
        command = participant_command(
            "timeserver",
            ClockSpec("bank", 0.8, 0.0),
            broker.url,
            SITE,
            ["--status-interval", "0.2"],
        )
        server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        observer = Observer(broker.url, SITE)
        try:
            assert observer.link.wait_until_ready(10)
            assert observer.wait_for(lambda: "bank" in observer.true_offsets(), 10)
            round_trips_and_errors(broker.url, args.exchanges, observer)
            throughput(broker.url, server.pid, args.clients, args.requests)
        finally:
            observer.close()
            stop_processes([server])


if __name__ == "__main__":
    main()
