"""A whole site on other brokers, judged from the truth signal.

- amqtt, a second implementation that speaks nothing newer than MQTT 3.1.1: a master, a
  polled line, a fleet node and a Cristian device, each with `--protocol 3.1.1`; the
  monitor and `clocksync now` on it; and a line's Last Will when it dies.
- A cluster of two ejabberd nodes (MQTT 5, no shared subscriptions) running
  broker/ejabberd.yml: the master on one, the lines on the other, and a time server on
  each answering every request.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.protocol.enums import MqttVersion, State
from clocksync.testing.amqttbroker import LocalAmqtt
from clocksync.testing.ejabberd import PASSWORD, EjabberdCluster, ejabberd_missing
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from tests.integration.support import run_cli

V311 = ("--protocol", "3.1.1")
EJABBERD_CONFIG = Path(__file__).parents[2] / "broker" / "ejabberd.yml"


@pytest.fixture(scope="module")
def amqtt() -> Iterator[LocalAmqtt]:
    with LocalAmqtt() as broker:
        yield broker


def test_a_whole_site_runs_on_a_311_only_broker(
    amqtt: LocalAmqtt, site: str, tmp_path: Path
) -> None:
    fleet = Fleet(amqtt.url, site, tmp_path)
    watcher = Observer(amqtt.url, site, protocol=MqttVersion.V311)
    try:
        assert watcher.link.wait_until_ready(10), watcher.link.refusal
        fleet.start("master", ClockSpec("lab", 0.3, 40), "--interval", "0.5", *V311)
        fleet.start("node", ClockSpec("KMC", -1.2, -60), *V311)
        fleet.start("node", ClockSpec("MIT", 0.8, 25), "--sync", "fleet", *V311)
        fleet.start("node", ClockSpec("phone", 2.5), "--sync", "cristian", *V311)

        def converged() -> bool:
            distances = watcher.distances_from("lab")
            return set(distances) == {"KMC", "MIT", "phone"} and max(distances.values()) < 1e-3

        assert watcher.wait_for(converged, 40), watcher.distances_from("lab")
        assert watcher.wait_for_rounds(4, 10)
        last = watcher.rounds[-1]
        assert {entry.name for entry in last.participants} == {"lab", "KMC"}
        assert last.fleet_reported == 1

        snapshot = run_cli("monitor", "--broker", str(amqtt.url), "--site", site, *V311,
                           "--once", "--json", "--wait", "1.5")  # fmt: skip
        assert snapshot.returncode == 0, snapshot.stderr
        rows = {row["name"] for row in json.loads(snapshot.stdout)["participants"]}
        assert rows == {"lab", "KMC", "MIT", "phone"}
        now = run_cli("now", "--broker", str(amqtt.url), "--site", site, *V311, "--json")
        assert now.returncode == 0, now.stderr
        assert json.loads(now.stdout)["server"] == "lab"

        fleet.kill("KMC")
        assert watcher.wait_for(lambda: watcher.statuses["KMC"].state == State.OFFLINE, 10), (
            "KMC's Last Will says it is gone"
        )
    finally:
        watcher.close()
        fleet.stop()
    logs = "".join(fleet.log_of(name) for name in ("lab", "MIT", "phone"))
    assert "Traceback" not in logs


@pytest.fixture(scope="module")
def ejabberd() -> Iterator[EjabberdCluster]:
    missing = ejabberd_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run installs ejabberd")
        pytest.skip(missing)
    with EjabberdCluster(2, EJABBERD_CONFIG) as cluster:
        yield cluster


def test_a_site_spans_an_ejabberd_cluster(
    ejabberd: EjabberdCluster, site: str, tmp_path: Path
) -> None:
    assert len(ejabberd.running_nodes()) == 2
    lab, lines = ejabberd.urls
    fleet = Fleet(lab, site, tmp_path)
    bank_site = f"{site}-bank"
    bank = Fleet(lab, bank_site, tmp_path)
    watcher = Observer(lines, site, password=PASSWORD)
    bank_watcher = Observer(lines, bank_site, password=PASSWORD)
    try:
        assert watcher.link.wait_until_ready(10), watcher.link.refusal
        assert bank_watcher.link.wait_until_ready(10), bank_watcher.link.refusal
        fleet.start("master", ClockSpec("lab", 0.3, 40), "--interval", "0.5", password=PASSWORD)
        fleet.start("node", ClockSpec("KMC", -1.2, -60), password=PASSWORD, broker=lines)
        fleet.start("node", ClockSpec("MIT", 0.8, 25), "--sync", "fleet", password=PASSWORD,
                    broker=lines)  # fmt: skip
        # Two time servers of one clock (the host's), one on each node of the cluster.
        bank.start("timeserver", ClockSpec("bank"), password=PASSWORD)
        bank.start("timeserver", ClockSpec("bank-2"), password=PASSWORD, broker=lines)
        bank.start("node", ClockSpec("phone", 2.5), "--sync", "cristian", password=PASSWORD,
                   broker=lines)  # fmt: skip

        def converged() -> bool:
            distances = watcher.distances_from("lab")
            return set(distances) == {"KMC", "MIT"} and max(distances.values()) < 1e-3

        assert watcher.wait_for(converged, 40), watcher.distances_from("lab")
        assert watcher.wait_for_rounds(4, 10)
        assert {entry.name for entry in watcher.rounds[-1].participants} == {"lab", "KMC"}
        assert watcher.rounds[-1].fleet_reported == 1

        def phone_synced() -> bool:
            distances = bank_watcher.distances_from("bank")
            return "phone" in distances and distances["phone"] < 1e-3

        assert bank_watcher.wait_for(phone_synced, 30), bank_watcher.distances_from("bank")
        # The broker has no shared subscriptions: both time servers answer every request,
        # across the cluster, and the client keeps the first.
        asked = run_cli("ask", "--broker", str(lab), "--site", bank_site, "--name", "laptop",
                        "--json", "--log-level", "debug",
                        env={"CLOCKSYNC_PASSWORD": PASSWORD})  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)
        assert answer["samples"] == answer["requested"]
        assert "another server answered it first" in asked.stderr
        assert "WARNING" not in asked.stderr, "a second server's answer is no fault"
    finally:
        watcher.close()
        bank_watcher.close()
        fleet.stop()
        bank.stop()
    logs = "".join(fleet.log_of(name) for name in ("lab", "KMC", "MIT"))
    logs += "".join(bank.log_of(name) for name in ("bank", "bank-2", "phone"))
    assert "Traceback" not in logs
    assert "refused a subscription" not in logs
