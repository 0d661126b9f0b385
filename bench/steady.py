"""A site as users start one: cold, on a broker with Mosquitto's default settings or ours,
with or without a competing CPU load, judged per minute from the truth signal.

    .venv/bin/python bench/steady.py --minutes 10 --drift 100 --broker default --load 2
    .venv/bin/python bench/steady.py --minutes 1 --seeds 1,2,3,4 --order lines-first

The master and the four lines are separate `clocksync` processes (statuses every 0.1 s),
each clock off by up to ±`--offset` s and ±`--drift` ppm (seeded), started in `--order`:
the master first, the lines first (the master 3 s later), or all at once.  `--broker
default` is `mosquitto -p PORT` (a listener, anonymous clients, nothing else: Nagle's
algorithm on), `nodelay` adds `set_tcp_nodelay true`.  `--load N` runs N busy processes
(`--load-nice` sets their niceness; 0, as a user's own busy program, by default).

Printed per run: p50 / p99 / max of |line - master| for every minute, the worst after
round 3 and over minutes 2 to the end, when the worst excursion happened, and the site's
frequency against the host's (a line fitted through the master's truth signal over the
last 5 minutes, or the second half of a shorter run) beside the mean of the clocks'
simulated drifts, which a Berkeley site should keep.  `--series FILE` writes every
(seconds, line, error) pair as CSV.
"""

import argparse
import contextlib
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from fleet import SITE, cpu_seconds

from clocksync.sim.scenarios import LINES, MASTER, percentile
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes

BROKERS = {
    "default": "listener {port} 127.0.0.1\nallow_anonymous true\n",
    "nodelay": "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n",
}
ORDERS = ("master-first", "lines-first", "together")
LINES_FIRST_LEAD_S = 3.0
JUDGED_FROM_ROUND = 3
FREQUENCY_WINDOW_S = 300.0


@dataclass(frozen=True)
class Minute:
    minute: int
    samples: int
    p50_us: float
    p99_us: float
    max_us: float


@dataclass(frozen=True)
class Result:
    seed: int
    broker: str
    order: str
    load: int
    drift_ppm: float
    interval_s: float
    minutes: list[Minute]
    worst_after_round3_us: float
    worst_at_s: float
    worst_line: str
    p99_from_minute2_us: float
    max_from_minute2_us: float
    site_ppm: float
    mean_drift_ppm: float
    master_cpu_s: float


def clocks(seed: int, offset_s: float, drift_ppm: float) -> list[ClockSpec]:
    """The master, then the four lines, each off by a seeded offset and drift."""
    rng = random.Random(seed)
    return [
        ClockSpec(name, rng.uniform(-offset_s, offset_s), rng.uniform(-drift_ppm, drift_ppm))
        for name in (MASTER, *LINES)
    ]


@contextlib.contextmanager
def busy(count: int, niceness: int) -> Iterator[None]:
    """`count` processes spinning on the CPU, niced by `niceness`, stopped on leaving."""
    spin = f"import os; os.nice({niceness})\nwhile True: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.send_signal(signal.SIGKILL)
            spinner.wait()


def line_errors(observer: Observer) -> list[tuple[int, str, float]]:
    """(host time, line, |line - master|) at every line status, the master's truth
    interpolated between its statuses around it."""
    assert observer.history is not None
    errors = []
    for name in LINES:
        for status in observer.history.get(name, []):
            if status.host_time is None or status.host_offset_s is None:
                continue
            reference = observer.offset_at(MASTER, status.host_time)
            if reference is not None:
                errors.append((status.host_time, name, abs(status.host_offset_s - reference)))
    return sorted(errors)


def site_frequency_ppm(observer: Observer, window_s: float) -> float:
    """The slope of the master's truth signal over the last `window_s` (or the second half
    of a shorter run), in ppm: how fast the site's time runs against the host's."""
    assert observer.history is not None
    points = [
        (s.host_time / 1e9, s.host_offset_s)
        for s in observer.history.get(MASTER, [])
        if s.host_time is not None and s.host_offset_s is not None
    ]
    if len(points) < 3:
        return float("nan")
    span = points[-1][0] - points[0][0]
    start = points[-1][0] - min(window_s, span / 2)
    recent = [(t, y) for t, y in points if t >= start]
    xs, ys = [t for t, _ in recent], [y for _, y in recent]
    return statistics.linear_regression(xs, ys).slope * 1e6


@dataclass(frozen=True)
class Observed:
    """What one run left to judge: every (host time, line, error), when it started and
    when its third round was seen, the master's truth signal and CPU."""

    errors: list[tuple[int, str, float]]
    started_ns: int
    judged_ns: int
    site_ppm: float
    master_cpu_s: float


def run(args: argparse.Namespace, seed: int) -> Result:
    specs = clocks(seed, args.offset, args.drift)
    observed = observe(args, specs, seed)
    if args.series:
        with open(args.series, "a") as out:
            for host_ns, name, error in observed.errors:
                seconds = (host_ns - observed.started_ns) / 1e9
                out.write(f"{seed},{seconds:.3f},{name},{error:.9f}\n")
    return summarize(args, seed, specs, observed)


def observe(args: argparse.Namespace, specs: list[ClockSpec], seed: int) -> Observed:
    """Start the broker, the load and the site as `args` say; watch for `--minutes`."""
    master, lines = specs[0], specs[1:]
    config = BROKERS[args.broker].format(port=0)
    with (
        LocalMosquitto(config=config) as broker,
        busy(args.load, args.load_nice),
        tempfile.TemporaryDirectory(prefix="clocksync-steady-") as logs,
    ):
        observer = Observer(broker.url, SITE, keep_history=True)
        processes: dict[str, subprocess.Popen[bytes]] = {}

        def start(role: str, clock: ClockSpec, extra: Sequence[str]) -> None:
            command = participant_command(
                role,
                clock,
                broker.url,
                SITE,
                ["--status-interval", "0.1", "--log-level", args.log_level, *extra],
            )
            with (Path(logs) / f"{clock.name}.log").open("wb") as log_file:
                processes[clock.name] = subprocess.Popen(
                    command, stdout=log_file, stderr=subprocess.STDOUT
                )

        def start_master() -> None:
            start("master", master, ["--interval", repr(args.interval)])

        try:
            if not observer.link.wait_until_ready(10):
                raise RuntimeError("the observer could not connect")
            started_ns = time.time_ns()
            if args.order == "master-first":
                start_master()
            for line in lines:
                start("node", line, [])
            if args.order == "together":
                start_master()
            if args.order == "lines-first":
                observer.pump(LINES_FIRST_LEAD_S)
                start_master()
            deadline = 30 + 5 * args.interval
            observer.wait_for(lambda: len(observer.rounds) >= JUDGED_FROM_ROUND, deadline)
            if len(observer.rounds) < JUDGED_FROM_ROUND:
                raise RuntimeError("the master did not run three rounds")
            judged_ns = time.time_ns()
            cpu_before = cpu_seconds(processes[MASTER].pid)
            observer.pump(args.minutes * 60 - (judged_ns - started_ns) / 1e9)
            cpu = cpu_seconds(processes[MASTER].pid) - cpu_before
            if args.keep_logs:
                for name in processes:
                    text = (Path(logs) / f"{name}.log").read_text(errors="replace")
                    Path(args.keep_logs, f"{seed}-{name}.log").write_text(text)
        finally:
            observer.close()
            stop_processes(list(processes.values()))
    site_ppm = site_frequency_ppm(observer, FREQUENCY_WINDOW_S)
    return Observed(line_errors(observer), started_ns, judged_ns, site_ppm, cpu)


def summarize(
    args: argparse.Namespace, seed: int, specs: list[ClockSpec], observed: Observed
) -> Result:
    started_ns, judged_ns = observed.started_ns, observed.judged_ns
    judged = [(t, n, e) for t, n, e in observed.errors if t >= judged_ns]
    by_minute: dict[int, list[float]] = {}
    for host_ns, _, error in judged:
        by_minute.setdefault(int((host_ns - started_ns) / 60e9), []).append(error * 1e6)
    minutes = [
        Minute(m, len(v), percentile(v, 0.5), percentile(v, 0.99), max(v))
        for m, v in sorted(by_minute.items())
    ]
    worst_t, worst_name, worst = max(judged, key=lambda item: item[2])
    later = [e * 1e6 for t, _, e in judged if t >= started_ns + 60e9] or [float("nan")]
    return Result(
        seed=seed,
        broker=args.broker,
        order=args.order,
        load=args.load,
        drift_ppm=args.drift,
        interval_s=args.interval,
        minutes=minutes,
        worst_after_round3_us=worst * 1e6,
        worst_at_s=(worst_t - started_ns) / 1e9,
        worst_line=worst_name,
        p99_from_minute2_us=percentile(later, 0.99),
        max_from_minute2_us=max(later),
        site_ppm=observed.site_ppm,
        mean_drift_ppm=statistics.fmean(spec.drift_ppm for spec in specs),
        master_cpu_s=observed.master_cpu_s,
    )


def report(result: Result) -> None:
    print(
        f"seed {result.seed}, broker {result.broker}, order {result.order}, "
        f"load {result.load}, drift ±{result.drift_ppm:g} ppm, {result.interval_s:g} s rounds"
    )
    for minute in result.minutes:
        print(
            f"  minute {minute.minute + 1:2d}: {minute.samples:5d} samples  "
            f"p50 {minute.p50_us:7.1f}  p99 {minute.p99_us:7.1f}  max {minute.max_us:7.1f} µs"
        )
    print(
        f"  worst after round {JUDGED_FROM_ROUND}: {result.worst_after_round3_us:.1f} µs "
        f"({result.worst_line} at {result.worst_at_s:.1f} s); from minute 2: "
        f"p99 {result.p99_from_minute2_us:.1f} µs, max {result.max_from_minute2_us:.1f} µs"
    )
    off = result.site_ppm - result.mean_drift_ppm
    print(
        f"  site frequency {result.site_ppm:+.3f} ppm of the host's (the clocks' mean drift "
        f"{result.mean_drift_ppm:+.3f} ppm: off by {off:+.3f}); "
        f"master CPU {result.master_cpu_s:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--drift", type=float, default=0.0, help="± ppm, drawn per clock")
    parser.add_argument("--offset", type=float, default=5.0, help="± seconds, drawn per clock")
    parser.add_argument("--seeds", default="1", help="comma-separated seeds, one run each")
    parser.add_argument("--broker", choices=sorted(BROKERS), default="default")
    parser.add_argument("--order", choices=ORDERS, default="master-first")
    parser.add_argument("--load", type=int, default=0, help="busy processes meanwhile")
    parser.add_argument(
        "--load-nice", type=int, default=0, help="their niceness (default 0: not niced)"
    )
    parser.add_argument("--series", help="append (seed, seconds, line, error) rows here")
    parser.add_argument("--keep-logs", help="copy every participant's log into this folder")
    parser.add_argument("--log-level", default="info", help="the participants' (default info)")
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    args = parser.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        result = run(args, seed)
        if args.json:
            print(json.dumps(asdict(result)), flush=True)
        else:
            report(result)


if __name__ == "__main__":
    main()
