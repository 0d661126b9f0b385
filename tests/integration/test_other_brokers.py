"""A whole site on a second broker implementation that speaks nothing newer than MQTT 3.1.1
(amqtt): a master, a polled line, a fleet node and a Cristian device, each with
`--protocol 3.1.1`, judged from the truth signal; the monitor and `clocksync now` on it;
and a line's Last Will when it dies."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.protocol.enums import MqttVersion, State
from clocksync.testing.amqttbroker import LocalAmqtt
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from tests.integration.support import run_cli

V311 = ("--protocol", "3.1.1")


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
