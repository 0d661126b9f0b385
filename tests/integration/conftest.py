"""A real Mosquitto for the integration tier, and participants as processes.

The broker, in order of preference: the one named by CLOCKSYNC_TEST_BROKER; a Mosquitto
container through testcontainers (the image from CLOCKSYNC_TEST_BROKER_IMAGE, by default the
pinned eclipse-mosquitto 2.0) when a Docker engine answers and has or can pull the image; a
local `mosquitto` on a free loopback port.  Why a container could not be had is printed.
Whichever broker it is, it is stopped after the session, also when a test fails; a container
that started but never became ready is removed at once.  Every test uses a site of its own,
so retained messages never leak between tests.  The Docker imports live here alone.
"""

import contextlib
import gc
import os
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException
from testcontainers.community.mqtt import MosquittoContainer

from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import Fleet
from clocksync.transport.url import BrokerUrl

BROKER_IMAGE = os.environ.get("CLOCKSYNC_TEST_BROKER_IMAGE", "eclipse-mosquitto:2.0.20")
BROKER_CONFIG = Path(__file__).resolve().parents[2] / "broker" / "mosquitto.conf"
DEV_USERS = ("lab", "lab-2", "KMC", "MIT", "bank", "phone", "monitor")
RYUK_HINT = (
    "testcontainers' reaper image cannot be pulled either; "
    "TESTCONTAINERS_RYUK_DISABLED=true runs without it"
)


@contextlib.contextmanager
def engine_socket_collected() -> Iterator[None]:
    """Without an engine the Docker client leaves its socket to the garbage collector:
    collect it here, rather than let the warning fail whichever test happens to come next."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def docker_engine() -> docker.DockerClient | None:
    """A client of the Docker engine, or None when none answers."""
    with engine_socket_collected():
        try:
            return docker.from_env()
        except DockerException:
            return None


def start_container(image: str) -> tuple[MosquittoContainer | None, str]:
    """A running, ready Mosquitto container, or None and why not."""
    with engine_socket_collected():
        try:
            container = MosquittoContainer(image)
        except DockerException as error:
            return None, f"no Docker engine answers ({error})"
    try:
        container.start(configfile=str(BROKER_CONFIG))
    except Exception as error:  # an image that cannot be pulled, a broker that never starts
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        if "ryuk" in reason.lower():
            reason = f"{reason} ({RYUK_HINT})"
        with contextlib.suppress(DockerException):
            container.stop()
        return None, f"the {image} container could not run: {reason}"
    return container, ""


BROKER_CHOSEN: list[str] = []
"""Which broker the session used, and why, for the summary at the end."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in BROKER_CHOSEN:
        terminalreporter.write_line(f"integration broker: {line}")


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerUrl]:
    override = os.environ.get("CLOCKSYNC_TEST_BROKER")
    if override:
        BROKER_CHOSEN.append(f"{override}, from CLOCKSYNC_TEST_BROKER")
        yield BrokerUrl.parse(override)
        return
    container, why_not = start_container(BROKER_IMAGE)
    if container is not None:
        try:
            host = container.get_container_host_ip()
            url = BrokerUrl(host, int(container.get_exposed_port(1883)))
            BROKER_CHOSEN.append(f"a {BROKER_IMAGE} container through testcontainers, at {url}")
            yield url
        finally:
            container.stop()
        return
    BROKER_CHOSEN.append(f"a local mosquitto, since {why_not}")
    with LocalMosquitto() as local:
        yield local.url


@pytest.fixture(scope="session")
def dev_secrets() -> Iterator[Path]:
    """broker/make-dev-secrets run into a temporary folder: a CA, the broker's certificate,
    passwords for DEV_USERS, the ACL and a production mosquitto.conf pointing at them."""
    # Mosquitto started as root reads its files as the mosquitto user: the folder must be
    # open to it, as pytest's own temporary folders are not.
    with tempfile.TemporaryDirectory(prefix="clocksync-secrets-") as folder:
        secrets = Path(folder)
        secrets.chmod(0o755)
        subprocess.run(
            [str(BROKER_CONFIG.parent / "make-dev-secrets"), str(secrets), *DEV_USERS],
            check=True,
            capture_output=True,
        )
        yield secrets


@pytest.fixture
def site() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def observer(broker: BrokerUrl, site: str) -> Iterator[Observer]:
    """The site's watcher; it keeps every status, so that a test can judge a reading
    against another clock's truth at the same instant (Observer.offsets_around)."""
    watcher = Observer(broker, site, keep_history=True)
    assert watcher.link.wait_until_ready(10), "observer could not connect"
    yield watcher
    watcher.close()


@pytest.fixture
def fleet(broker: BrokerUrl, site: str, tmp_path: Path) -> Iterator[Fleet]:
    participants = Fleet(broker, site, tmp_path)
    yield participants
    participants.stop()
