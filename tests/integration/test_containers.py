"""The container path: the broker configuration says what testcontainers waits for, and
an image that cannot be had leaves a reason and no container behind."""

import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from clocksync.testing.localbroker import find_mosquitto, free_port
from tests.integration.conftest import BROKER_CONFIG, docker_engine, start_container

READY = re.compile(r"mosquitto version \d+.\d+.\d+ running")
"""What testcontainers' MosquittoContainer waits for in the broker's log."""


def test_the_broker_config_logs_what_testcontainers_waits_for(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        BROKER_CONFIG.read_text().replace("listener 1883", f"listener {port} 127.0.0.1")
    )
    log_path = tmp_path / "mosquitto.log"
    with log_path.open("wb") as log_file:
        broker = subprocess.Popen(
            ["stdbuf", "-oL", find_mosquitto(), "-c", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while not READY.search(log_path.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert READY.search(log_path.read_text()), log_path.read_text()
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_an_image_that_cannot_be_had_gives_a_reason_and_leaves_no_container() -> None:
    engine = docker_engine()
    if engine is None:
        pytest.skip("no Docker engine answers here")
    try:
        before = {c.id for c in engine.containers.list(all=True)}
        container, why_not = start_container("clocksync-test/no-such-image:0")
        assert container is None
        assert why_not
        assert {c.id for c in engine.containers.list(all=True)} == before
    finally:
        engine.close()


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A temporary folder Mosquitto can read once it has dropped root for its own user
    (pytest's are closed to others)."""
    with tempfile.TemporaryDirectory(prefix="clocksync-compose-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        yield folder


def test_the_compose_broker_serves_the_web_page_beside_mqtt(open_folder: Path) -> None:
    """broker/web.conf laid out as compose.yaml mounts it (the container's /mosquitto
    under a folder of its own): MQTT on one listener, the page and MQTT over WebSockets on
    the other."""
    tmp_path = open_folder
    broker_dir = BROKER_CONFIG.parent
    mqtt_port, web_port = free_port(), free_port()
    (tmp_path / "config" / "base.d").mkdir(parents=True)
    (tmp_path / "config" / "base.d" / "mosquitto.conf").write_text(
        BROKER_CONFIG.read_text().replace("listener 1883", f"listener {mqtt_port} 127.0.0.1")
    )
    (tmp_path / "web").symlink_to(broker_dir.parent / "web")
    config = tmp_path / "config" / "mosquitto.conf"
    config.write_text(
        (broker_dir / "web.conf")
        .read_text()
        .replace("/mosquitto", str(tmp_path))
        .replace("listener 9001", f"listener {web_port} 127.0.0.1")
    )
    with (tmp_path / "mosquitto.log").open("wb") as log_file:
        broker = subprocess.Popen(
            [find_mosquitto(), "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        page = ""
        while not page and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/index.html") as reply:
                    page = reply.read().decode()
            except OSError:
                time.sleep(0.1)
        assert "clocksync.js" in page, (tmp_path / "mosquitto.log").read_text()
        published = subprocess.run(
            ["mosquitto_pub", "-p", str(mqtt_port), "-t", "clocksync/x", "-m", "{}"],
            check=False,
            timeout=10,
        )
        assert published.returncode == 0
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_compose_mounts_only_files_that_exist() -> None:
    root = BROKER_CONFIG.parents[1]
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    sources = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
    ]
    assert sources, "the broker mounts its configuration"
    for source in sources:
        assert (root / source).exists(), source
    commands = [service.get("command", []) for service in compose["services"].values()]
    assert any("timeserver" in command for command in commands), "Manipal Buddy's bank"
    assert any("3.1.1" in command for command in commands), "the 3.1.1 web browser"
