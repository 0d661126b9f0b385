"""Cristian over MQTT request/response, against a real Mosquitto: the error bound holds
against the truth signal with real timestamps, clients never get each other's answers
through a real broker, the server survives bad input, and the commands work.  Which answers
a client accepts is tested in-process (tests/unit/test_cristian_client.py)."""

import json
import random
import subprocess
import time

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.core.sample import Sample
from clocksync.driver.client import run_bursts
from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import TimeRequest
from clocksync.protocol.timefmt import parse_ns
from clocksync.protocol.topics import Topics
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.link import MqttLink
from clocksync.transport.url import BrokerUrl
from tests.integration.support import (
    cristian_client,
    run_cli,
    start_master,
    true_offset_s,
    wait_for_status,
)

TRUTH_SLACK_S = 5e-6
"""How far the truth itself may be off: each side's truth signal is read between two
monotonic readings, and the server's is interpolated between its statuses."""

SERVER_OFFSET_S = 0.8
SERVER_DRIFT_PPM = 40.0


@pytest.fixture
def bank(fleet: Fleet, observer: Observer) -> str:
    """A drifting time server, publishing its truth signal five times a second."""
    clock = ClockSpec("bank", SERVER_OFFSET_S, SERVER_DRIFT_PPM)
    fleet.start("timeserver", clock, "--status-interval", "0.2")
    wait_for_status(observer, "bank")
    return "bank"


def server_truth(observer: Observer, server: str, host_time: int) -> float:
    """The server's clock minus the host clock at `host_time`, from its status history."""
    assert observer.wait_for(lambda: observer.offset_at(server, host_time) is not None, 5)
    offset = observer.offset_at(server, host_time)
    assert offset is not None
    return offset


def error_of(sample: Sample, client_truth_s: float, observer: Observer, server: str) -> float:
    host_time = sample.exchange.t4 - round(client_truth_s * NS_PER_S)
    return abs(sample.offset_s - (server_truth(observer, server, host_time) - client_truth_s))


def test_the_error_bound_holds_in_every_sample(
    broker: BrokerUrl, site: str, bank: str, observer: Observer
) -> None:
    rng = random.Random(3)
    checked = 0
    for run in range(20):
        client = cristian_client(broker, site, f"phone-{run}", rng.uniform(-10, 10))
        run_bursts([client], samples=10, timeout_s=30)
        assert client.burst is not None
        samples = client.burst.samples
        assert len(samples) >= 8
        truth = true_offset_s(client)
        for sample in samples:
            error = error_of(sample, truth, observer, bank)
            assert error <= sample.error_bound_s + TRUTH_SLACK_S, (run, sample)
            checked += 1
        client.close()
    assert checked >= 160
    best = min(sample.error_bound_s for sample in samples)
    assert best < 0.005, "the best of ten loopback exchanges should be bounded within 5 ms"


def test_fifty_clients_at_once_each_get_their_own_answers(
    broker: BrokerUrl, site: str, bank: str, observer: Observer
) -> None:
    clients = [
        cristian_client(broker, site, f"student-{i}", offset_s=(i - 25) * 0.37) for i in range(50)
    ]
    try:
        run_bursts(clients, samples=4, timeout_s=60)
        for client in clients:
            assert client.burst is not None
            best = client.burst.best()
            assert best is not None, "every client is answered"
            error = error_of(best, true_offset_s(client), observer, bank)
            assert error <= best.error_bound_s + TRUTH_SLACK_S
    finally:
        for client in clients:
            client.close()


class Spy:
    """Records everything published below a site, properties included."""

    def __init__(self, broker: BrokerUrl, site: str) -> None:
        self.seen: list[Inbound] = []
        self.link = MqttLink(broker, f"spy-{site}", subscriptions=[f"{Topics(site).prefix}/#"])
        assert self.link.wait_until_ready(10)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            events = self.link.poll(0.01)
            self.seen += [event for event in events if isinstance(event, Inbound)]


def test_the_server_keeps_serving_through_garbage(
    broker: BrokerUrl, site: str, bank: str, fleet: Fleet
) -> None:
    topics = Topics(site)
    spy = Spy(broker, site)
    valid = TimeRequest("mallory", time.time_ns()).encode()
    garbage: list[tuple[bytes, str | None]] = [
        (b"", topics.cristian_reply("mallory")),
        (b"not json", topics.cristian_reply("mallory")),
        (b"\xff" * 100, topics.cristian_reply("mallory")),
        (b"x" * 1_000_000, topics.cristian_reply("mallory")),
        (b'{"v": 1, "type": "time-request", "client": "mallory", "sent": NaN}', None),
        (b'{"v": 1, "type": "time-request", "client": 7, "sent": "x"}', None),
        (valid, None),  # no reply topic at all
        (valid, topics.correction("KMC")),  # aimed at another participant's topic
        (valid, topics.cristian_reply("victim")),  # answers for someone else
    ]
    for payload, reply_to in garbage:
        spy.link.publish(
            Publish(topics.cristian_request, payload, response_topic=reply_to, correlation=b"c")
        )
    spy.pump(1.0)
    assert fleet.processes["bank"].poll() is None, "the server is still running"
    answered_elsewhere = [
        m.topic
        for m in spy.seen
        if m.topic != topics.cristian_request and not m.topic.endswith("/status")
    ]
    assert answered_elsewhere == []
    assert "dropped a bad time-request" in fleet.log_of("bank")
    assert "asks for answers on" in fleet.log_of("bank")
    client = cristian_client(broker, site, "honest", offset_s=-1.0)
    run_bursts([client], samples=3, timeout_s=30)
    assert client.burst is not None
    assert len(client.burst.samples) == 3
    client.close()
    spy.link.close([])


def ask_raw(broker: BrokerUrl, site: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`clocksync ask --name phone` on the site, as it finished."""
    return run_cli("ask", "--broker", str(broker), "--site", site, "--name", "phone", *extra)


def ask(broker: BrokerUrl, site: str, *extra: str) -> dict[str, object]:
    result = run_cli("ask", "--broker", str(broker), "--site", site, "--json", *extra)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def number(report: dict[str, object], key: str) -> float:
    value = report[key]
    assert isinstance(value, float), key
    return value


def check_report(report: dict[str, object], observer: Observer, server: str) -> None:
    for key in ("offset_s", "rtt_s", "error_bound_s", "client_host_offset_s", "delay_s"):
        number(report, key)
    assert isinstance(report["samples"], int)
    assert report["samples"] >= 1
    assert str(report["server_time"]).endswith("Z")
    assert report["server"] == server
    client_truth = number(report, "client_host_offset_s")
    host_time = parse_ns(str(report["client_time"])) - round(client_truth * NS_PER_S)
    truth = server_truth(observer, server, host_time) - client_truth
    error = abs(number(report, "offset_s") - truth)
    assert error <= number(report, "error_bound_s") + TRUTH_SLACK_S


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_ask_reports_an_offset_within_its_bound(
    broker: BrokerUrl, site: str, bank: str, observer: Observer, protocol: str
) -> None:
    report = ask(broker, site, "--name", "mobile-app", "--offset", "-3.25", "--protocol", protocol)
    assert report["samples"] == 8
    assert abs(number(report, "offset_s") - (SERVER_OFFSET_S + 3.25)) < 0.01
    check_report(report, observer, bank)


def test_ask_apply_brings_the_clock_within_the_bound_of_the_server(
    broker: BrokerUrl, site: str, bank: str, observer: Observer
) -> None:
    report = ask(broker, site, "--name", "web-browser", "--offset", "1.7", "--apply")
    applied = report["applied"]
    assert isinstance(applied, dict)
    assert applied["how"] == "step"
    bound = number(report, "error_bound_s")
    assert abs(number(applied, "offset_s")) <= number(applied, "error_bound_s") + bound
    observer.pump(0.5)
    latest = observer.statuses[bank].host_offset_s
    assert latest is not None
    # The server drifts 40 ppm: a few seconds since the measurement add well under 1 ms.
    assert abs(number(applied, "client_host_offset_s") - latest) <= bound + 1e-3


def test_ask_without_a_server_says_so_and_fails(broker: BrokerUrl, site: str) -> None:
    result = ask_raw(broker, site, "--samples", "2", "--timeout", "0.3")
    assert result.returncode == 1
    assert "no answer from a time server" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_cristian_node_keeps_the_servers_time(
    fleet: Fleet, observer: Observer, bank: str, protocol: str
) -> None:
    fleet.start(
        "node",
        ClockSpec("kiosk", -3.0, 60.0),
        "--sync",
        "cristian",
        "--interval",
        "0.3",
        "--protocol",
        protocol,
        "--status-interval",
        "0.2",
    )

    def settled() -> bool:
        status = observer.statuses.get("kiosk")
        return status is not None and status.updates >= 4 and status.error_bound_s is not None

    assert observer.wait_for(settled, 20), fleet.log_of("kiosk")
    status = observer.statuses["kiosk"]
    assert (status.sync, status.role) == ("cristian", "node")
    assert status.host_offset_s is not None
    assert status.host_time is not None
    truth = server_truth(observer, bank, status.host_time)
    assert abs(status.host_offset_s - truth) < 1e-3


def test_the_master_answers_unless_told_not_to(
    broker: BrokerUrl, site: str, fleet: Fleet, observer: Observer
) -> None:
    start_master(fleet)
    wait_for_status(observer, "lab")
    report = ask(broker, site, "--name", "phone")
    assert report["server"] == "lab"
    fleet.stop()
    start_master(fleet, "--no-timeserver")
    observer.pump(1.0)
    result = ask_raw(broker, site, "--samples", "1", "--timeout", "0.5")
    assert result.returncode == 1


def test_time_servers_share_the_requests_and_a_killed_one_loses_no_client(
    broker: BrokerUrl, site: str, fleet: Fleet, observer: Observer
) -> None:
    for name in ("bank-1", "bank-2"):
        fleet.start("timeserver", ClockSpec(name, SERVER_OFFSET_S))
        wait_for_status(observer, name)
    clients = [cristian_client(broker, site, f"student-{i}", offset_s=i * 0.3) for i in range(10)]
    try:
        servers: set[str] = set()
        for burst in range(6):
            if burst == 3:
                fleet.processes["bank-1"].kill()
            run_bursts(clients, samples=4, timeout_s=30)
            for client in clients:
                assert client.burst is not None
                best = client.burst.best()
                assert best is not None, f"burst {burst}: a client got no answer"
                assert abs(best.offset_s - (SERVER_OFFSET_S - true_offset_s(client))) < 0.01
                servers |= {sample.peer for sample in client.burst.samples}
        assert servers == {"bank-1", "bank-2"}, "the requests were shared"
    finally:
        for client in clients:
            client.close()
