"""A cluster of ejabberd nodes (Debian's `ejabberd`, MQTT 5 by mod_mqtt) on loopback: what
the tests and benchmarks run a site on when it outgrows one broker.

Each node runs broker/ejabberd.yml with its MQTT listener moved to a free loopback port,
under its own Erlang node name, spool and log folder; every node after the first joins the
first.  ejabberd runs as its own system user (ejabberdctl switches to it when started by
root), so this needs root or that user.  Every node is stopped on leaving the `with` block,
and the Erlang port mapper too when the cluster started it.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from clocksync.testing.localbroker import BrokerUnavailableError, free_port
from clocksync.transport.url import BrokerUrl

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
USER = "ejabberd"
LOGIN = "clocksync"
"""The user name every participant gives (broker/ejabberd.yml takes any, with a password)."""
PASSWORD = "clocksync"  # noqa: S105 (anonymous login: any password is taken)


def ejabberd_missing() -> str | None:
    """Why no cluster can be run here, or None."""
    if shutil.which("ejabberdctl") is None and not Path("/usr/sbin/ejabberdctl").exists():
        return "ejabberd is not installed (Debian package ejabberd)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"there is no {USER} system user"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != USER:
        return f"ejabberd runs as {USER}: only root or {USER} can start it"
    return None


class EjabberdCluster:
    """`with EjabberdCluster(2) as cluster: ... cluster.urls[i] ...` (each node's MQTT URL,
    with the user name; the password is PASSWORD)."""

    def __init__(self, members: int, config: Path) -> None:
        self.members = members
        self._template = config.read_text()
        self._folder = tempfile.TemporaryDirectory(prefix="clocksync-ejabberd-")
        self._tag = f"clocksync{os.getpid()}x{free_port()}n"
        self.nodes = [f"{self._tag}{index}@localhost" for index in range(members)]
        self.ports = [free_port() for _ in range(members)]
        self.urls = [BrokerUrl("127.0.0.1", port, LOGIN) for port in self.ports]
        self._processes: list[subprocess.Popen[bytes]] = []
        self._epmd_was_running = _epmd_running()

    def __enter__(self) -> "EjabberdCluster":
        reason = ejabberd_missing()
        if reason is not None:
            raise BrokerUnavailableError(reason)
        user = pwd.getpwnam(USER)
        root = Path(self._folder.name)
        try:
            for index in range(self.members):
                folder = root / f"n{index}"
                for sub in ("spool", "logs"):
                    (folder / sub).mkdir(parents=True)
                (folder / "ejabberd.yml").write_text(self._on_port(self.ports[index]))
                (folder / "ejabberdctl.cfg").write_text("")
                if Path("/etc/ejabberd/inetrc").exists():
                    shutil.copy("/etc/ejabberd/inetrc", folder / "inetrc")
                _chown_tree(root, user.pw_uid, user.pw_gid)
                with (folder / "console.log").open("wb") as console:
                    self._processes.append(
                        subprocess.Popen(
                            [*self._ctl(index), "foreground"],
                            stdout=console,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,
                        )
                    )
                self._wait_listening(index)
                if index:
                    self._join(index)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _on_port(self, port: int) -> str:
        text = re.sub(r"(?m)^(\s*- port:) \d+$", rf"\1 {port}", self._template)
        return re.sub(r'(?m)^(\s*ip:) "[^"]*"$', r'\1 "127.0.0.1"', text)

    def _ctl(self, index: int) -> list[str]:
        folder = Path(self._folder.name) / f"n{index}"
        return [
            shutil.which("ejabberdctl") or "/usr/sbin/ejabberdctl",
            "--config-dir", str(folder),
            "--node", self.nodes[index],
            "--spool", str(folder / "spool"),
            "--logs", str(folder / "logs"),
        ]  # fmt: skip

    def _wait_listening(self, index: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._processes[index].poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.ports[index]), timeout=0.5).close()
            except OSError:
                time.sleep(0.2)
                continue
            return
        raise BrokerUnavailableError(
            f"ejabberd {self.nodes[index]} did not start: {self.log(index)}"
        )

    def _join(self, index: int) -> None:
        joined = subprocess.run(
            [*self._ctl(index), "join_cluster", self.nodes[0]],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if joined.returncode != 0:
            raise BrokerUnavailableError(f"{self.nodes[index]} did not join: {joined.stdout}")
        # Joining restarts the node's applications: wait for its listener again.
        time.sleep(1.0)
        self._wait_listening(index)

    def running_nodes(self) -> list[str]:
        """The cluster's members as the first node sees them."""
        listed = subprocess.run(
            [*self._ctl(0), "list_cluster"], capture_output=True, text=True, check=False
        )
        return [line.strip() for line in listed.stdout.splitlines() if "@" in line]

    def log(self, index: int) -> str:
        folder = Path(self._folder.name) / f"n{index}"
        text = ""
        for name in ("console.log", "logs/ejabberd.log"):
            path = folder / name
            if path.exists():
                text += path.read_text(errors="replace")[-2000:]
        return text

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for index, process in enumerate(self._processes):
            if process.poll() is None:
                subprocess.run(
                    [*self._ctl(index), "stop"],
                    capture_output=True,
                    timeout=STOP_TIMEOUT_S,
                    check=False,
                )
        for process in self._processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                # The node itself, should su have put it in a session of its own.
                pkill = shutil.which("pkill") or "/usr/bin/pkill"
                subprocess.run([pkill, "-KILL", "-f", self._tag], capture_output=True, check=False)
                process.wait()
        if not self._epmd_was_running:
            epmd = shutil.which("epmd") or "/usr/bin/epmd"
            subprocess.run([epmd, "-kill"], capture_output=True, check=False)
        self._folder.cleanup()


def _epmd_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4369), timeout=0.5).close()
    except OSError:
        return False
    return True


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    os.chown(root, uid, gid)
    for path in root.rglob("*"):
        os.chown(path, uid, gid)
