"""A fleet of thousands through one real Mosquitto: the master, the kitchen's four polled
lines, and N fleet nodes from a few swarm processes (bench/swarm.py), each node with its
own connection and its own exchanges.

    .venv/bin/python bench/scale.py --nodes 10000 --rounds 10 --json

Measured from outside, over `--rounds` rounds after `--warmup`: each round's wall time
(the fleet's tick to its result, as a subscriber sees them), the master's CPU per round,
the share of the fleet whose asks were answered and whose clocks applied the result (both
counted by the swarm processes; the share the leader answered itself, from its summaries),
and |clock - master| from the truth signal, for the four lines and for the fleet.  Run with
--nodes 0 for the lines alone, and with --standbys K for K standby masters answering the
fleet's asks for the leader (their CPU is reported beside the leader's).
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet import SITE, cpu_seconds, true_errors

from clocksync.nodes.fleet import ANSWER_TIMEOUT_S
from clocksync.protocol.envelope import Inbound
from clocksync.protocol.messages import FleetTick, Poll, RoundSummary
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
    """When each round's first poll, the fleet's tick and the round's summary (published
    with its result) arrived here, by the kernel's receive timestamps: a round lasts from
    its first poll to its summary; the fleet may ask from its tick, which comes as the
    round before closes."""

    def __init__(self, broker: BrokerUrl) -> None:
        self.topics = Topics(SITE)
        self.polls: dict[int, int] = {}
        self.ticks: dict[int, int] = {}
        self.results: dict[int, int] = {}
        self.link = MqttLink(
            broker,
            "clocksync-bench-roundwatch",
            subscriptions=[
                self.topics.fleet_tick,
                self.topics.round,
                self.topics.poll(LINES[0]),
            ],
        )

    def poll(self) -> None:
        for event in self.link.poll(0.0):
            if not isinstance(event, Inbound):
                continue
            at = event.received_mono
            if event.topic == self.topics.fleet_tick:
                self.ticks[FleetTick.decode(event.payload).round] = at
            elif event.topic == self.topics.round:
                self.results[RoundSummary.decode(event.payload).round] = at
            else:
                self.polls.setdefault(Poll.decode(event.payload).round, at)

    def spans_s(self, starts: dict[int, int], rounds: Sequence[int]) -> list[float]:
        return [
            (self.results[r] - starts[r]) / 1e9 for r in rounds if r in starts and r in self.results
        ]


def pump(observer: Observer, watch: RoundWatch, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        observer.pump(0.02)
        watch.poll()


def wait(
    observer: Observer, watch: RoundWatch, condition: Callable[[], bool], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
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
            "--timeout", str(args.fleet_timeout),
        ]  # fmt: skip
        processes.append((subprocess.Popen(command), result))
    return processes


@dataclass
class Outcome:
    """What a run saw: the rounds measured, the truth since they began, CPU per process,
    how many fleet nodes had their answer in each round and applied its result."""

    observer: Observer
    watch: RoundWatch
    rounds: list[RoundSummary]
    since_host_time: int
    cpu_s: list[float]
    """Per process: the leading master, the broker, the standby masters, then the swarm's."""
    answered: dict[int, int]
    corrected: dict[int, int]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--reply-timeout", type=float, default=1.5)
    parser.add_argument("--procs", type=int, default=0, help="swarm processes (default: a 2,500)")
    parser.add_argument("--fleet-status-interval", type=float, default=60.0)
    parser.add_argument(
        "--fleet-timeout",
        type=float,
        default=ANSWER_TIMEOUT_S,
        help="a fleet node's wait for its answer, s",
    )
    parser.add_argument(
        "--standbys",
        type=int,
        default=0,
        help="standby masters, which answer the fleet's asks for the leader",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def run(args: argparse.Namespace) -> Outcome:
    """The site on a broker of its own: lines and swarm first, then the master; measure
    `args.rounds` rounds after `args.warmup`."""
    rng = random.Random(args.seed)
    with (
        LocalMosquitto(config=LARGE_FLEET_CONF.read_text()) as broker,
        tempfile.TemporaryDirectory() as tmp,
    ):
        observer = Observer(broker.url, SITE, keep_history=True)
        watch = RoundWatch(broker.url)
        assert observer.link.wait_until_ready(10)
        assert watch.link.wait_until_ready(10)
        processes: list[subprocess.Popen[bytes]] = []
        swarms = swarm(args, broker.url, Path(tmp))
        try:
            for line in LINES:
                clock = ClockSpec(line, rng.uniform(-1, 1), rng.uniform(-100, 100))
                processes.append(start("node", clock, broker.url, ["--status-interval", "0.5"]))
            everyone = {*LINES, *(f"swarm-{i}" for i in range(args.nodes))}
            connecting_s = 120 + args.nodes / 200
            wait(observer, watch, lambda: everyone <= set(observer.statuses), connecting_s)
            plan = ["--interval", str(args.interval), "--reply-timeout", str(args.reply_timeout)]
            master = start(
                "master",
                ClockSpec(MASTER, rng.uniform(-1, 1), rng.uniform(-100, 100)),
                broker.url,
                [*plan, "--status-interval", "0.5", "--priority", "1"],
            )
            processes.append(master)
            standbys = [
                start(
                    "master",
                    ClockSpec(f"{MASTER}-{index + 2}", rng.uniform(-1, 1), rng.uniform(-100, 100)),
                    broker.url,
                    plan,
                )
                for index in range(args.standbys)
            ]
            processes += standbys
            timeout = 60 + args.interval * (args.warmup + 2)
            wait(observer, watch, lambda: len(observer.rounds) >= args.warmup, timeout)
            first = observer.rounds[-1].round + 1
            since = observer.statuses[MASTER].host_time or 0
            pids = [
                master.pid,
                broker.pid or 0,
                *(p.pid for p in standbys),
                *(p.pid for p, _ in swarms),
            ]
            cpu_before = [cpu_seconds(pid) for pid in pids]
            last = first + args.rounds - 1
            timeout = 60 + args.interval * (args.rounds + 2)
            wait(observer, watch, lambda: observer.rounds[-1].round >= last, timeout)
            cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
            # A node whose answer comes after the round's result applies it when the answer
            # comes: wait that long before the swarm counts the last round.
            pump(observer, watch, args.fleet_timeout + 0.5)
        finally:
            stop_processes([p for p, _ in swarms] + processes)
            observer.close()
        answered: dict[int, int] = {}
        corrected: dict[int, int] = {}
        for _, result in swarms:
            counts = json.loads(result.read_text())
            for name, table in (("answered", answered), ("corrected", corrected)):
                for round_, count in counts[name].items():
                    table[int(round_)] = table.get(int(round_), 0) + count
    measured = [summary for summary in observer.rounds if first <= summary.round <= last]
    return Outcome(observer, watch, measured, since, cpu, answered, corrected)


def spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}


def median(values: list[float]) -> float | None:
    return percentile(values, 0.5) if values else None


def report(args: argparse.Namespace, outcome: Outcome) -> dict[str, object]:
    rounds = [summary.round for summary in outcome.rounds]
    count = max(1, len(rounds))
    nodes = max(1, args.nodes)
    swarm_names = [f"swarm-{i}" for i in range(args.nodes)]
    observer, watch, since = outcome.observer, outcome.watch, outcome.since_host_time
    answered = [outcome.answered.get(r, 0) / nodes for r in rounds]
    applied = [outcome.corrected.get(r, 0) / nodes for r in rounds]
    standbys = outcome.cpu_s[2 : 2 + args.standbys]
    return {
        "nodes": args.nodes,
        "rounds": len(rounds),
        "interval_s": args.interval,
        "reply_timeout_s": args.reply_timeout,
        "standbys": args.standbys,
        "swarm_processes": len(outcome.cpu_s) - 2 - args.standbys,
        "round_wall_s_p50": median(watch.spans_s(watch.polls, rounds)),
        "round_wall_s_max": max(watch.spans_s(watch.polls, rounds), default=None),
        "fleet_window_s_p50": median(watch.spans_s(watch.ticks, rounds)),
        "master_cpu_s_per_round": outcome.cpu_s[0] / count,
        "broker_cpu_s_per_round": outcome.cpu_s[1] / count,
        "standby_cpu_s_per_round": [cpu / count for cpu in standbys],
        "swarm_cpu_s_per_round": sum(outcome.cpu_s[2 + args.standbys :]) / count,
        "answered_fraction": min(answered) if args.nodes and answered else None,
        "leader_answered_fraction": min(
            (summary.fleet_asked / nodes for summary in outcome.rounds), default=None
        ),
        "corrected_fraction": min(applied) if args.nodes and applied else None,
        "corrected_fraction_by_round": [round(s, 4) for s in applied] if args.nodes else None,
        "reported_p50": median([float(s.fleet_reported) for s in outcome.rounds]),
        "lines_error_us": spread([e * 1e6 for e in true_errors(observer, LINES, since)]),
        "fleet_error_us": spread([e * 1e6 for e in true_errors(observer, swarm_names, since)]),
    }


def main() -> None:
    args = arguments()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the broker inherits it
    figures = report(args, run(args))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:24s} {value}")


if __name__ == "__main__":
    main()
