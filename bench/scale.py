"""A fleet of thousands through one real Mosquitto: the master, the kitchen's four polled
lines, and N fleet nodes from a few swarm processes (bench/swarm.py), each node with its
own connection and its own exchanges.

    .venv/bin/python bench/scale.py --nodes 10000 --rounds 10 --json

Measured from outside, over `--rounds` rounds after `--warmup`: each round's wall time
(the fleet's tick to its result, as a subscriber sees them), the master's CPU per round,
the share of the fleet whose asks the master answered (its summaries) and whose clocks
applied the result (counted by the swarm processes), and |clock - master| from the truth
signal, for the four lines and for the fleet.  Run with --nodes 0 for the lines alone.
"""

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fleet import SITE, cpu_seconds, true_errors

from clocksync.protocol.envelope import Inbound
from clocksync.protocol.messages import FleetResult, FleetTick, RoundSummary
from clocksync.protocol.topics import Topics
from clocksync.sim.scenarios import LINES, MASTER, percentile
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes
from clocksync.transport.link import MqttLink
from clocksync.transport.url import BrokerUrl

HERE = Path(__file__).resolve().parent
LARGE_FLEET_CONF = HERE.parent / "broker" / "large-fleet.conf"
PER_PROCESS = 2500


class RoundWatch:
    """When each round's fleet tick and result arrived here (kernel receive timestamps)."""

    def __init__(self, broker: BrokerUrl) -> None:
        self.topics = Topics(SITE)
        self.ticks: dict[int, int] = {}
        self.results: dict[int, int] = {}
        self.link = MqttLink(
            broker,
            "clocksync-bench-roundwatch",
            subscriptions=[self.topics.fleet_tick, self.topics.fleet_result],
        )

    def poll(self) -> None:
        for event in self.link.poll(0.0):
            if not isinstance(event, Inbound):
                continue
            if event.topic == self.topics.fleet_tick:
                self.ticks[FleetTick.decode(event.payload).round] = event.received_mono
            else:
                self.results[FleetResult.decode(event.payload).round] = event.received_mono

    def wall_s(self, rounds: Sequence[int]) -> list[float]:
        return [
            (self.results[r] - self.ticks[r]) / 1e9
            for r in rounds
            if r in self.ticks and r in self.results
        ]


def pump(observer: Observer, watch: RoundWatch, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        observer.pump(0.02)
        watch.poll()


def wait(observer: Observer, watch: RoundWatch, condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        pump(observer, watch, 0.2)


def start(
    role: str, clock: ClockSpec, broker: BrokerUrl, extra: list[str]
) -> subprocess.Popen[bytes]:
    command = participant_command(role, clock, broker, SITE, ["--log-level", "error", *extra])
    return subprocess.Popen(command)


def swarm(
    args: argparse.Namespace, broker: BrokerUrl, out: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    processes = []
    count = args.procs or max(1, math.ceil(args.nodes / PER_PROCESS))
    share = math.ceil(args.nodes / count) if args.nodes else 0
    for index in range(count):
        first = index * share
        size = min(share, args.nodes - first)
        if size <= 0:
            break
        result = out / f"swarm-{index}.json"
        command = [
            sys.executable, str(HERE / "swarm.py"), "--broker", str(broker), "--site", SITE,
            "--first", str(first), "--count", str(size), "--seed", str(args.seed),
            "--status-interval", str(args.fleet_status_interval), "--out", str(result),
        ]  # fmt: skip
        processes.append((subprocess.Popen(command), result))
    return processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--reply-timeout", type=float, default=1.6)
    parser.add_argument("--procs", type=int, default=0, help="swarm processes (default: a 2,500)")
    parser.add_argument("--fleet-status-interval", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the broker inherits it
    rng = random.Random(args.seed)
    with (
        LocalMosquitto(config=LARGE_FLEET_CONF.read_text()) as broker,
        tempfile.TemporaryDirectory() as tmp,
    ):
        url = broker.url
        observer = Observer(url, SITE, keep_history=True)
        watch = RoundWatch(url)
        assert observer.link.wait_until_ready(10)
        assert watch.link.wait_until_ready(10)
        processes: list[subprocess.Popen[bytes]] = []
        swarms = swarm(args, url, Path(tmp))
        try:
            lines = ["--status-interval", "0.1"]
            for line in LINES:
                clock = ClockSpec(line, rng.uniform(-1, 1), rng.uniform(-100, 100))
                processes.append(start("node", clock, url, lines))
            everyone = {*LINES, *(f"swarm-{i}" for i in range(args.nodes))}
            wait(
                observer, watch, lambda: everyone <= set(observer.statuses), 120 + args.nodes / 200
            )
            master = start(
                "master",
                ClockSpec(MASTER, rng.uniform(-1, 1), rng.uniform(-100, 100)),
                url,
                ["--interval", str(args.interval), "--reply-timeout", str(args.reply_timeout),
                 "--status-interval", "0.1"],
            )  # fmt: skip
            processes.append(master)
            timeout = 60 + args.interval * (args.warmup + 2)
            wait(observer, watch, lambda: len(observer.rounds) >= args.warmup, timeout)
            first = observer.rounds[-1].round + 1
            since = observer.statuses[MASTER].host_time or 0
            pids = [master.pid, broker.pid or 0, *(p.pid for p, _ in swarms)]
            cpu_before = [cpu_seconds(pid) for pid in pids]
            last = first + args.rounds - 1
            wait(
                observer,
                watch,
                lambda: observer.rounds[-1].round >= last,
                60 + args.interval * (args.rounds + 2),
            )
            cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
            pump(observer, watch, 0.5)
        finally:
            stop_processes([p for p, _ in swarms] + processes)
        corrected: dict[str, int] = {}
        for _, result in swarms:
            for round_, count in json.loads(result.read_text())["corrected"].items():
                corrected[round_] = corrected.get(round_, 0) + count
        observer.close()
    measured: list[RoundSummary] = [s for s in observer.rounds if first <= s.round <= last]
    rounds = [s.round for s in measured]
    nodes = max(1, args.nodes)
    swarm_names = [f"swarm-{i}" for i in range(args.nodes)]
    line_errors = [e * 1e6 for e in true_errors(observer, LINES, since)]
    fleet_errors = [e * 1e6 for e in true_errors(observer, swarm_names, since)]
    walls = watch.wall_s(rounds)
    answered = [s.fleet_asked / nodes for s in measured]
    applied = [corrected.get(str(r), 0) / nodes for r in rounds]

    def spread(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}

    report = {
        "nodes": args.nodes,
        "rounds": len(measured),
        "interval_s": args.interval,
        "reply_timeout_s": args.reply_timeout,
        "swarm_processes": len(swarms),
        "round_wall_s_p50": percentile(walls, 0.5) if walls else None,
        "round_wall_s_max": max(walls) if walls else None,
        "master_cpu_s_per_round": cpu[0] / max(1, len(measured)),
        "broker_cpu_s_per_round": cpu[1] / max(1, len(measured)),
        "swarm_cpu_s_per_round": sum(cpu[2:]) / max(1, len(measured)),
        "answered_fraction": min(answered) if args.nodes and answered else None,
        "corrected_fraction": min(applied) if args.nodes and applied else None,
        "reported_p50": percentile([s.fleet_reported for s in measured], 0.5),
        "lines_error_us": spread(line_errors),
        "fleet_error_us": spread(fleet_errors),
        "fleet_error_samples": len(fleet_errors),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:24s} {value}")


if __name__ == "__main__":
    main()
