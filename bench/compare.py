"""Side by side, in one run on one machine: clocksync Berkeley, clocksync Cristian, the
classroom Berkeley (bench/naive_berkeley.py) through the same broker, and NTP to a local
chronyd.

    .venv/bin/python bench/compare.py [--rounds 60] [--exchanges 800] [--flood 100000]

Needs chronyd (Debian package `chrony`) and ntplib (`pip install -e '.[bench]'`).  chronyd
runs on a private configuration: a private UDP port, serving its host's clock as a local
stratum-10 source, `-x` so that it never touches the system clock.  Its clock is the host's,
so an NTP client on the same host has a true offset of 0 and its measured offset is its
error.  Prints one Markdown table: true error p50 / p99 (Berkeley: |line - master| from the
truth signal after 20 rounds of settling; Cristian: the lowest-delay of each 8 exchanges,
against the truth signal, and a Cristian device (a `clocksync node --sync cristian`
process, its clock disciplined by its history of exchanges) from its truth signal after 20
seconds, for --rounds seconds; NTP: each query), the round trip p50, the serving side's CPU
per exchange, and a time server's answers per CPU-second under a flood.
"""

import argparse
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ntplib
from cristian import SITE as CRISTIAN_SITE
from cristian import throughput
from fleet import cpu_seconds, fleet, run_fleet
from links import cristian as cristian_device
from naive_berkeley import run as run_naive

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.driver.client import CristianClient, run_bursts
from clocksync.sim.scenarios import LINES, percentile
from clocksync.testing.localbroker import LocalMosquitto, free_port
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes

CHRONY_CONF = """\
port {port}
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 10
cmdport 0
pidfile {directory}/chronyd.pid
"""
NTP_REQUEST = struct.pack("!B47x", 0x23)  # version 4, mode 3 (client)


def micro(values: list[float]) -> str:
    us = [v * 1e6 for v in values]
    return f"{percentile(us, 0.5):.1f} / {percentile(us, 0.99):.1f} µs"


def row(name: str, *cells: str) -> None:
    print(f"| {name} | {' | '.join(cells)} |", flush=True)


def berkeley(rounds: int) -> None:
    run = run_fleet(fleet(1, LINES, 5.0, 100.0), rounds=20 + rounds, settle_rounds=20)
    delays = [p.delay_s for s in run.rounds for p in s.participants if p.role == "node"]
    exchanges = len(run.rounds) * len(LINES) * 8
    row(
        "clocksync Berkeley (4 lines, ±100 ppm, 1 s rounds)",
        micro(run.errors_s),
        f"{percentile(delays, 0.5) * 1e6:.0f} µs",
        f"{run.master_cpu_s / exchanges * 1e6:.0f} µs (master)",
        "-",
    )


def cristian(exchanges: int, flood: int) -> None:
    with LocalMosquitto() as broker:
        command = participant_command(
            "timeserver", ClockSpec("bank"), broker.url, CRISTIAN_SITE, ["--status-interval", "0.2"]
        )
        server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        observer = Observer(broker.url, CRISTIAN_SITE)
        client = CristianClient(broker.url, CRISTIAN_SITE, "phone", SoftwareClock(offset_s=-2.5))
        try:
            assert observer.wait_for(lambda: "bank" in observer.true_offsets(), 10)
            assert client.link.wait_until_ready(10)
            time.sleep(1.0)
            samples = []
            for _ in range(exchanges // 8):
                run_bursts([client], 8, timeout_s=10)
                assert client.burst is not None
                best = client.burst.best()
                if best is not None:
                    samples.append(best)
            observer.pump(0.3)
            server_offset = observer.statuses["bank"].host_offset_s or 0.0
            truth = server_offset - client.clock.host_offset_ns()[0] / NS_PER_S
            errors = [abs(s.offset_s - truth) for s in samples]
            answers, cpu, _ = throughput(broker.url, server.pid, 50, flood // 50)
            row(
                "clocksync Cristian (best of 8 exchanges)",
                micro(errors),
                f"{percentile([s.rtt_s for s in samples], 0.5) * 1e6:.0f} µs",
                f"{cpu / max(answers, 1) * 1e6:.0f} µs (server)",
                f"{answers / cpu:,.0f}",
            )
        finally:
            client.close()
            observer.close()
            stop_processes([server])


def device(rounds: int) -> None:
    errors, bounded, held = cristian_device(None, rounds, 20)
    row(
        f"clocksync Cristian device (8 exchanges a second, its bound held {held} of {bounded})",
        micro(errors),
        "-",
        "-",
        "-",
    )


def naive(rounds: int) -> None:
    with LocalMosquitto() as broker:
        errors = run_naive(broker.url, rounds)
    row("classroom Berkeley (absolute times, no RTT compensation)", micro(errors), "-", "-", "-")


def chrony(exchanges: int, flood: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "chrony.conf"
        config.write_text(CHRONY_CONF.format(port=port, directory=directory))
        daemon = subprocess.Popen(
            ["chronyd", "-x", "-d", "-u", "root", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            ntp = ntplib.NTPClient()
            replies = [ntp.request("127.0.0.1", port=port, version=4) for _ in range(exchanges)]
            answers, cpu = _flood_chronyd(port, daemon.pid, flood)
            row(
                "NTP to chronyd (ntplib, each query)",
                micro([abs(r.offset) for r in replies]),
                f"{percentile([r.delay for r in replies], 0.5) * 1e6:.0f} µs",
                f"{cpu / max(answers, 1) * 1e6:.1f} µs (chronyd)",
                f"{answers / cpu:,.0f}",
            )
        finally:
            stop_processes([daemon])


def _flood_chronyd(port: int, pid: int, count: int) -> tuple[int, float]:
    """Send `count` client requests as fast as one socket can; count the answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1.0)
    answered = 0

    def receive() -> None:
        nonlocal answered
        try:
            while True:
                sock.recv(512)
                answered += 1
        except OSError:
            return

    receiver = threading.Thread(target=receive)
    receiver.start()
    before = cpu_seconds(pid)
    for _ in range(count):
        sock.send(NTP_REQUEST)
    receiver.join()
    cpu = cpu_seconds(pid) - before
    sock.close()
    return answered, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--exchanges", type=int, default=800)
    parser.add_argument("--flood", type=int, default=100_000)
    args = parser.parse_args()
    print("| | true error p50 / p99 | round trip p50 | CPU per exchange | answers per CPU-s |")
    print("|---|---|---|---|---|")
    berkeley(args.rounds)
    cristian(args.exchanges, args.flood)
    device(args.rounds)
    naive(args.rounds)
    chrony(args.exchanges, args.flood)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
