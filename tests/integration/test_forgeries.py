"""Issue 8's forgeries, reproduced through a real, open broker: for every poll it sees, an
attacker sends the node a correction of an hour and of 10⁹ s, with the poll's own master,
epoch, round and sequence number.  An unsigned node refuses them (--max-change); a node
that trusts the master's key never lets them near its clock."""

from pathlib import Path

from clocksync.protocol.envelope import Inbound, Publish
from clocksync.protocol.messages import Correction, Poll
from clocksync.protocol.topics import Topics
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.link import MqttLink
from clocksync.transport.url import BrokerUrl
from tests.integration.support import run_cli, start_master

ROUNDS = 8


def attack(broker: BrokerUrl, site: str, observer: Observer) -> int:
    """Forge corrections for every poll to KMC, and replay every genuine correction to it
    twice, until ROUNDS more rounds have passed; return how many were sent."""
    topics = Topics(site)
    attacker = MqttLink(
        broker,
        f"attacker-{site}",
        subscriptions=[topics.poll("KMC"), topics.correction("KMC")],
    )
    sent = 0
    replayed: set[bytes] = set()
    try:
        assert attacker.wait_until_ready(10)
        target = len(observer.rounds) + ROUNDS
        while len(observer.rounds) < target:
            for event in attacker.poll(0.01):
                if not isinstance(event, Inbound):
                    continue
                if event.topic == topics.correction("KMC"):
                    if b'"sig"' in event.payload and event.payload not in replayed:
                        replayed.add(event.payload)  # a genuine one, seen once: replay it
                        for _ in range(2):
                            attacker.publish(Publish(event.topic, event.payload))
                            sent += 1
                    continue
                poll = Poll.decode(event.payload)
                for seconds in (3600.0, 1e9):
                    forged = Correction(
                        poll.master, poll.node, poll.epoch, poll.round, poll.seq, seconds
                    )
                    attacker.publish(Publish(topics.correction("KMC"), forged.encode()))
                    sent += 1
            observer.pump(0.01)
    finally:
        attacker.close()
    return sent


def in_service(fleet: Fleet, observer: Observer, *extra: str) -> None:
    """KMC and the master, until KMC has had its first updates."""
    fleet.start("node", ClockSpec("KMC", 0.3), *extra)
    observer.wait_for(lambda: "KMC" in observer.statuses, 10)
    assert observer.wait_for(lambda: observer.statuses["KMC"].updates >= 4, 30)


def test_an_unsigned_node_refuses_the_forgeries(
    fleet: Fleet, observer: Observer, broker: BrokerUrl, site: str
) -> None:
    start_master(fleet)
    in_service(fleet, observer)
    assert attack(broker, site, observer) >= 2 * ROUNDS
    observer.pump(0.3)
    assert observer.distances_from("lab")["KMC"] <= 0.001
    log = fleet.log_of("KMC")
    assert "refused a correction" in log
    assert "Traceback" not in log
    assert fleet.processes["KMC"].poll() is None


def test_a_node_trusting_the_masters_key_ignores_them(
    fleet: Fleet, observer: Observer, broker: BrokerUrl, site: str, tmp_path: Path
) -> None:
    assert run_cli("keygen", "--out", str(tmp_path / "lab")).returncode == 0
    start_master(fleet, "--signing-key", str(tmp_path / "lab.key"))
    in_service(fleet, observer, "--trust-key", str(tmp_path / "lab.pub"))
    updates = observer.statuses["KMC"].updates
    assert attack(broker, site, observer) >= 2 * ROUNDS
    observer.pump(0.3)
    assert observer.distances_from("lab")["KMC"] <= 0.001
    log = fleet.log_of("KMC")
    assert "it is not signed" in log
    assert "refused a correction" not in log, "no forgery reached the clock"
    assert observer.statuses["KMC"].updates >= updates + ROUNDS - 2, "the master's still do"
