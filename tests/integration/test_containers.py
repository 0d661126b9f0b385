"""The container path: the broker configuration says what testcontainers waits for, and
an image that cannot be had leaves a reason and no container behind."""

import re
import subprocess
import time
from pathlib import Path

import pytest

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
