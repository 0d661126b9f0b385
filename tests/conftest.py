"""The test tiers: tests/unit (the pure core, the wire format and every role's decisions,
in-process), tests/sim (the roles on the deterministic simulator) and tests/integration
(processes and a real Mosquitto).  The first two start no process and open no connection:
a test there that tries fails."""

import socket
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ISOLATED_TIERS = {"unit", "sim"}


@pytest.fixture(autouse=True)
def isolated_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.path.relative_to(TESTS).parts[0] in ISOLATED_TIERS:

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("this tier starts no process and opens no connection")

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket.socket, "connect_ex", refuse)
