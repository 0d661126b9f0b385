"""The command line as users meet it: usage errors, an absent broker, clean shutdown, demo."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest

from clocksync.testing.localbroker import free_port
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, Fleet
from clocksync.transport.url import BrokerUrl
from tests.integration.support import run_cli


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "required"),
        (["node"], "--name"),
        (["node", "--name", "a/b"], "invalid name"),
        (["node", "--name", "KMC", "--broker", "http://x"], "expected mqtt://"),
        (["node", "--name", "KMC", "--drift-ppm", "nan"], "must be"),
        (["node", "--name", "KMC", "--drift-ppm", "200000"], "within"),
        (["node", "--name", "KMC", "--offset", "soon"], "not a number"),
        (["node", "--name", "KMC", "--makestep", "x", "3"], "--makestep"),
        (["node", "--name", "KMC", "--makestep", "0.1", "-1"], "must not be negative"),
        (["master", "--interval", "0"], "positive"),
        (["master", "--samples", "0"], "at least 1"),
        (["master", "--interval", "1", "--reply-timeout", "2"], "reply timeout"),
        (["master", "--site", "a+b"], "invalid name"),
        (["ask"], "--name"),
        (["ask", "--name", "phone", "--samples", "0"], "at least 1"),
        (["ask", "--name", "phone", "--protocol", "4"], "invalid choice"),
        (["ask", "--name", "phone", "--drift-ppm", "5"], "unrecognized"),
        (["node", "--name", "KMC", "--samples", "3"], "need --sync cristian or fleet"),
        (["node", "--name", "KMC", "--sync", "fleet", "--interval", "3"], "--interval needs"),
        (["monitor", "--json"], "--json needs --once"),
        (["monitor", "--once", "--wait", "0"], "positive"),
        (["now", "--samples", "0"], "at least 1"),
        (["now", "--offset", "1"], "unrecognized"),
        (["master", "--protocol", "3"], "invalid choice"),
        (["node", "--name", "KMC", "--sync", "ntp"], "invalid choice"),
        (["node", "--name", "KMC", "--sync", "cristian", "--timeout", "-1"], "positive"),
        (["timeserver", "--makestep", "0.1", "3"], "unrecognized"),
        (["timeserver", "--busy-poll", "-1"], "zero or more"),
        (["demo", "party"], "invalid choice"),
        (["keygen"], "--out"),
        (["keygen", "--out", "/nonexistent/dir/lab"], "--out"),
        (["node", "--name", "KMC", "--trust-key", "/nonexistent.pub"], "cannot read a public key"),
        (["master", "--signing-key", "/nonexistent.key"], "cannot read a private key"),
        (["node", "--name", "KMC", "--max-change", "0"], "positive"),
        (["master", "--samples", "65"], "from 1 to 64"),
        (["ask", "--name", "p", "--broker", "mqtts://h", "--tls-cert", "c.pem"], "--tls-key"),
        (["ask", "--name", "p", "--broker", "mqtts://h", "--tls-ca", "/none.pem"], "TLS files"),
        (["ask", "--name", "p", "--broker", "tcp://h"], "wss://"),
        (["timeserver", "--trust-key", "k.pub"], "unrecognized"),
    ],
)
def test_bad_arguments_get_a_usage_error(args: list[str], complaint: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_broker_is_retried_quickly_and_logged_once() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clocksync", "node", "--name", "KMC",
         "--broker", f"mqtt://127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(4.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr
    retries = [line for line in stderr.splitlines() if "nothing listens at" in line]
    assert len(retries) == 1, "the same reason is not repeated every second"
    assert "retrying in 0." in retries[0]


def test_two_processes_with_one_name_stop_knocking_each_other_off(
    fleet: Fleet, observer: Observer
) -> None:
    fleet.start("node", ClockSpec("KMC"))
    twin = Fleet(fleet.broker, fleet.site, fleet.logs / "twin")
    twin.logs.mkdir()
    twin.start("node", ClockSpec("KMC"))
    try:
        time.sleep(8)
    finally:
        twin.stop()
    logs = fleet.log_of("KMC") + twin.log_of("KMC")
    assert "same client id" in logs
    assert logs.count("closed the connection") < 10, "they back off instead of ping-ponging"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_signal_publishes_offline_and_exits_zero(
    fleet: Fleet, observer: Observer, how: signal.Signals
) -> None:
    node = fleet.start("node", ClockSpec("KMC", 0.5))
    assert observer.wait_for(
        lambda: "KMC" in observer.statuses and observer.statuses["KMC"].state == "online", 10
    )
    online = observer.statuses["KMC"]
    assert online.host_offset_s == pytest.approx(0.5, abs=0.01)
    assert online.host_time is not None
    node.send_signal(how)
    assert node.wait(timeout=10) == 0
    assert observer.wait_for(lambda: observer.statuses["KMC"].state == "offline", 5)
    assert observer.statuses["KMC"].host_offset_s == pytest.approx(0.5, abs=0.01)
    assert "Traceback" not in fleet.log_of("KMC")


def test_retained_status_greets_a_late_watcher(fleet: Fleet, broker: BrokerUrl, site: str) -> None:
    fleet.start("node", ClockSpec("KMC"))
    early = Observer(broker, site)
    try:
        assert early.wait_for(lambda: "KMC" in early.statuses, 10)
    finally:
        early.close()
    late = Observer(broker, site)
    try:
        assert late.wait_for(lambda: "KMC" in late.statuses, 5)
    finally:
        late.close()


def test_demo_converges_says_so_and_plots_it(tmp_path: Path) -> None:
    picture = tmp_path / "kitchen.png"
    result = run_cli("demo", "--seed", "3", "--plot", str(picture), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "converged" in result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) >= 2
    assert f"to {picture}" in result.stdout
    height, width, _ = matplotlib.image.imread(picture).shape
    assert (width, height) == (990, 528)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_demo_stopped_by_sigterm_stops_everything_it_started() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "clocksync", "demo", "--max-rounds", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    header = demo.stdout.readline()
    assert "Manipal Foodie" in header
    deadline = time.monotonic() + 15
    children: list[int] = []
    while len(children) < 6 and time.monotonic() < deadline:
        children = _children(demo.pid)
        time.sleep(0.1)
    assert len(children) == 6, "expected the broker, the master and four lines"
    demo.send_signal(signal.SIGTERM)
    _, stderr = demo.communicate(timeout=20)
    assert demo.returncode == 130
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert not [child for child in children if _alive(child)]


def test_buddy_demo_shows_both_devices_within_their_bounds() -> None:
    result = run_cli("demo", "buddy", timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("mobile-app") for line in lines)
    assert any(line.startswith("web-browser") and " 3.1.1 " in line for line in lines)
    assert "both devices agree with the bank within their bounds" in result.stdout
