"""amqtt, a second MQTT broker implementation (3.1.1 only, from PyPI), on a free loopback
port: what the tests run a whole 3.1.1 site on.  Always stopped on leaving the `with`
block."""

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from clocksync.testing.localbroker import BrokerUnavailableError, free_port
from clocksync.transport.url import BrokerUrl

START_TIMEOUT_S = 20.0
SETTINGS = """\
listeners:
  default:
    type: tcp
    bind: 127.0.0.1:{port}
plugins:
  amqtt.plugins.authentication.AnonymousAuthPlugin:
    allow_anonymous: true
"""


class LocalAmqtt:
    """`with LocalAmqtt() as broker: ... broker.url ...`"""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = BrokerUrl("127.0.0.1", self.port)
        self._folder = tempfile.TemporaryDirectory(prefix="clocksync-amqtt-")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "LocalAmqtt":
        folder = Path(self._folder.name)
        config = folder / "broker.yaml"
        config.write_text(SETTINGS.format(port=self.port))
        binary = shutil.which("amqtt", path=str(Path(sys.executable).parent))
        if binary is None:
            raise BrokerUnavailableError("amqtt is not installed (pip install amqtt)")
        with (folder / "amqtt.log").open("wb") as log:
            self._process = subprocess.Popen(
                [binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BrokerUnavailableError(f"amqtt did not start: {self.log()[-2000:]}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def log(self) -> str:
        return (Path(self._folder.name) / "amqtt.log").read_text(errors="replace")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._folder.cleanup()
