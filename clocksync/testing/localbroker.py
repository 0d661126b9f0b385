"""A private Mosquitto on a free loopback port, for the demo, the tests and the benchmarks.

It runs the same settings as broker/mosquitto.conf, bound to 127.0.0.1 only, and is
always stopped on leaving the `with` block, whatever happened inside it.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from clocksync.transport.url import BrokerUrl, Scheme

SBIN_MOSQUITTO = Path("/usr/sbin/mosquitto")
START_TIMEOUT_S = 10.0
SETTINGS = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
"""

USERS_DEFAULTS = """\
listener {port} 127.0.0.1
allow_anonymous true
"""
"""Mosquitto as users run it: a listener, anonymous clients, every other setting its
default (Nagle's algorithm on: no `set_tcp_nodelay`)."""


TRANSPORT_PORTS = {Scheme.MQTT: 1883, Scheme.WS: 9001, Scheme.MQTTS: 8883, Scheme.WSS: 8443}


def every_transport(certs: Path) -> str:
    """A configuration with a listener for every transport clocksync speaks, open to all
    (for tests and benchmarks), TLS with the certificates in `certs` (ca.crt, broker.crt,
    broker.key, as broker/make-dev-secrets writes them); listeners on TRANSPORT_PORTS."""
    lines = ["per_listener_settings false", "allow_anonymous true", "set_tcp_nodelay true",
             "max_queued_messages 100000", "log_dest stderr", "log_type error"]  # fmt: skip
    for scheme, port in TRANSPORT_PORTS.items():
        lines.append(f"listener {port}")
        if scheme.websockets:
            lines.append("protocol websockets")
        if scheme.tls:
            lines += [f"cafile {certs / 'ca.crt'}", f"certfile {certs / 'broker.crt'}",
                      f"keyfile {certs / 'broker.key'}"]  # fmt: skip
    return "\n".join(lines) + "\n"


WEB_PORT = 9001
WEB = Path(__file__).resolve().parents[2] / "web"
"""The site's web page, in a clone of the repository."""


def serving_web(web: Path) -> str:
    """The plain settings, plus a WebSockets listener on WEB_PORT that also serves the
    page in `web` (Mosquitto's http_dir): browsers load it and speak MQTT on one port."""
    return (
        SETTINGS.format(port=1883) + f"listener {WEB_PORT}\nprotocol websockets\nhttp_dir {web}\n"
    )


class BrokerUnavailableError(RuntimeError):
    """Mosquitto is not installed or would not start."""


def find_mosquitto() -> str:
    """The mosquitto binary; Debian installs it outside an ordinary user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if SBIN_MOSQUITTO.exists():
        return str(SBIN_MOSQUITTO)
    raise BrokerUnavailableError("mosquitto is not installed (Debian: apt-get install mosquitto)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def on_free_ports(config: str) -> tuple[str, dict[int, int]]:
    """`config` with every listener moved to a free loopback port; and which port went
    where."""
    moved: dict[int, int] = {}

    def move(line: str) -> str:
        words = line.split()
        if len(words) < 2 or words[0] != "listener":
            return line
        moved[int(words[1])] = port = free_port()
        return f"listener {port} 127.0.0.1"

    return "\n".join(move(line) for line in config.splitlines()) + "\n", moved


BRIDGE_TARGET = "MAIN-BROKER:1883"
"""Where broker/bridge.conf's bridge points, to be replaced by the main broker's address."""


def bridged_to(main: BrokerUrl, template: str) -> "LocalMosquitto":
    """A second broker running `template` (broker/bridge.conf), its bridge pointed at `main`."""
    return LocalMosquitto(config=template.replace(BRIDGE_TARGET, f"{main.host}:{main.port}"))


class LocalMosquitto:
    """`with LocalMosquitto() as broker:` gives a running broker at `broker.url`.

    `port` 0 picks a free one; a given port lets a test restart a broker where it was.
    `config`, a Mosquitto configuration to run instead of the plain one, has its listeners
    moved to free loopback ports; `ports` says which went where.
    """

    def __init__(self, port: int = 0, config: str | None = None) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="clocksync-broker-")
        self._process: subprocess.Popen[bytes] | None = None
        self.port = port
        self._config = config
        self.ports: dict[int, int] = {}

    @property
    def url(self) -> BrokerUrl:
        return BrokerUrl("127.0.0.1", self.port)

    def url_for(self, scheme: Scheme) -> BrokerUrl:
        """The URL of an `every_transport` broker's listener for `scheme`, by the name its
        development certificate carries."""
        return BrokerUrl("localhost", self.ports[TRANSPORT_PORTS[scheme]], scheme=scheme)

    def start(self) -> "LocalMosquitto":
        binary = find_mosquitto()
        config = Path(self._workdir.name) / "mosquitto.conf"
        if self._config is None:
            self.port = self.port or free_port()
            config.write_text(SETTINGS.format(port=self.port))
        else:
            text, self.ports = on_free_ports(self._config)
            self.port = next(iter(self.ports.values()))
            config.write_text(text)
        log_path = Path(self._workdir.name) / "mosquitto.log"
        with log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                [binary, "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            return self
        output = log_path.read_text(errors="replace").strip()
        self.stop()
        raise BrokerUnavailableError(f"mosquitto did not start on port {self.port}: {output}")

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, for a benchmark that counts its CPU."""
        return None if self._process is None else self._process.pid

    def kill(self) -> None:
        """End the broker as a crash would (SIGKILL): no goodbye to any client."""
        if self._process is not None:
            self._process.kill()
        self.stop()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self._workdir.cleanup()

    def __enter__(self) -> "LocalMosquitto":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
