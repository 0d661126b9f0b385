"""A real Mosquitto for the integration tests, and helpers to run participants as processes.

The broker, in order of preference: the one named by CLOCKSYNC_TEST_BROKER; a pinned
eclipse-mosquitto 2.0 container through testcontainers when a Docker engine answers; a local
`mosquitto` on a free loopback port.  Whichever it is, it is stopped after the session.
Every test uses a site of its own, so retained messages never leak between tests.
"""

import gc
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.errors import DockerException
from testcontainers.community.mqtt import MosquittoContainer

from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.transport import BrokerUrl
from tests.support import Fleet

MOSQUITTO_IMAGE = "eclipse-mosquitto:2.0.20"
BROKER_CONFIG = Path(__file__).resolve().parent.parent / "broker" / "mosquitto.conf"
log = logging.getLogger(__name__)


def _serve(container: MosquittoContainer) -> Iterator[BrokerUrl]:
    container.start(configfile=str(BROKER_CONFIG))
    try:
        host = container.get_container_host_ip()
        yield BrokerUrl(host, int(container.get_exposed_port(1883)))
    finally:
        container.stop()


def _container_broker() -> Iterator[BrokerUrl] | None:
    """A pinned Mosquitto container, or None when no Docker engine answers."""
    with warnings.catch_warnings():
        # Without an engine the Docker client leaves its socket to the garbage collector;
        # collect it here rather than let it fail whichever test happens to come next.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return _serve(MosquittoContainer(MOSQUITTO_IMAGE))
        except DockerException as error:
            reason = str(error)
        gc.collect()
    log.info("no Docker engine (%s); using a local mosquitto", reason)
    return None


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerUrl]:
    override = os.environ.get("CLOCKSYNC_TEST_BROKER")
    if override:
        yield BrokerUrl.parse(override)
        return
    from_container = _container_broker()
    if from_container is not None:
        yield from from_container
        return
    with LocalMosquitto() as local:
        yield local.url


@pytest.fixture
def site() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def observer(broker: BrokerUrl, site: str) -> Iterator[Observer]:
    watcher = Observer(broker, site)
    assert watcher.link.wait_until_ready(10), "observer could not connect"
    yield watcher
    watcher.close()


@pytest.fixture
def fleet(broker: BrokerUrl, site: str, tmp_path: Path) -> Iterator[Fleet]:
    participants = Fleet(broker, site, tmp_path)
    yield participants
    participants.stop()
