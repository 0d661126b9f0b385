"""Berkeley accuracy on loopback, judged from the truth signal.

Runs the master and the four lines as separate processes against a private Mosquitto, with
1 s rounds and every participant publishing its status every 0.1 s.  For each node status,
the master's offset from the host clock at the same host time is interpolated between the
master's two neighbouring statuses, so the error is sampled all through the interval, not
only just after a correction.

    .venv/bin/python bench/berkeley_accuracy.py [--rounds 60] [--trials 10]

Prints, at drift 0 and at ±100 ppm: p50, p99 and max of |participant - master| after
convergence, and the master's measured delay; then the rounds needed to bring clocks that
start within ±5 s to within 1 ms of the master, over several seeds.
"""

import argparse
import bisect
import random
import statistics
import subprocess
from dataclasses import dataclass

from clocksync.demo import LINES, MASTER, SimulatedClock, participant_command, stop_processes
from clocksync.localbroker import LocalMosquitto
from clocksync.messages import Status
from clocksync.observer import Observer
from clocksync.transport import BrokerUrl

CONVERGED_S = 0.001
STATUS_INTERVAL = "0.1"
MASTER_EXTRA: list[str] = []


@dataclass(frozen=True)
class Run:
    """What one run of the kitchen showed."""

    converged_after: int | None
    errors_s: list[float]
    delays_s: list[float]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def offset_at(history: list[Status], host_time: int) -> float | None:
    """A participant's truth offset at `host_time`, interpolated between its statuses."""
    times = [s.host_time or 0 for s in history]
    index = bisect.bisect_left(times, host_time)
    if index == 0 or index == len(history):
        return None
    before, after = history[index - 1], history[index]
    if before.host_offset_s is None or after.host_offset_s is None:
        return None
    span = times[index] - times[index - 1]
    weight = (host_time - times[index - 1]) / span if span else 0.0
    return before.host_offset_s + weight * (after.host_offset_s - before.host_offset_s)


def true_errors(observer: Observer, since_host_time: int) -> list[float]:
    """|node - master| at every node status after `since_host_time`."""
    assert observer.history is not None
    master = observer.history.get(MASTER, [])
    errors = []
    for name in LINES:
        for status in observer.history.get(name, []):
            if status.host_time is None or status.host_offset_s is None:
                continue
            if status.host_time < since_host_time:
                continue
            reference = offset_at(master, status.host_time)
            if reference is not None:
                errors.append(abs(status.host_offset_s - reference))
    return errors


def run_kitchen(clocks: list[SimulatedClock], rounds: int, converge_only: bool) -> Run:
    with LocalMosquitto() as broker:
        observer = Observer(broker.url, "bench", keep_history=True)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            assert observer.link.wait_until_ready(10)
            nodes = [clock for clock in clocks if clock.name != MASTER]
            processes += [_start(clock, broker.url) for clock in nodes]
            online = {clock.name for clock in nodes}
            if not observer.wait_for(lambda: online <= set(observer.true_offsets()), 15):
                raise RuntimeError("the nodes did not come online")
            processes += [_start(clock, broker.url) for clock in clocks if clock.name == MASTER]
            return _measure(observer, rounds, converge_only, len(clocks))
        finally:
            observer.close()
            stop_processes(processes)


def _start(clock: SimulatedClock, broker: BrokerUrl) -> subprocess.Popen[bytes]:
    role = "master" if clock.name == MASTER else "node"
    extra = ["--status-interval", STATUS_INTERVAL, "--log-level", "error"]
    if role == "master":
        extra += ["--interval", "1", *MASTER_EXTRA]
    return subprocess.Popen(participant_command(role, clock, broker, "bench", extra))


def _measure(observer: Observer, rounds: int, converge_only: bool, participants: int) -> Run:
    converged_after: int | None = None
    counted_from: int | None = None
    since = 0
    seen = 0
    while True:
        if not observer.wait_for_rounds(seen + 1, 15):
            raise RuntimeError("the master stopped publishing rounds")
        summary = observer.rounds[seen]
        seen += 1
        if len(summary.participants) < participants:
            continue
        observer.pump(0.3)
        truth = observer.true_offsets()
        worst = max(abs(truth[name] - truth[MASTER]) for name in LINES)
        if converged_after is None and worst <= CONVERGED_S:
            converged_after = summary.round
            if converge_only:
                break
            counted_from = summary.round
            since = observer.statuses[MASTER].host_time or 0
        if counted_from is not None and summary.round >= counted_from + rounds:
            break
        if converged_after is None and summary.round > 30:
            break
    if counted_from is None:
        return Run(converged_after, [], [])
    delays = [
        p.delay_s
        for s in observer.rounds
        if s.round > counted_from
        for p in s.participants
        if p.role == "node"
    ]
    return Run(converged_after, true_errors(observer, since), delays)


def kitchen(seed: int, drift_ppm: float) -> list[SimulatedClock]:
    rng = random.Random(seed)
    return [
        SimulatedClock(name, rng.uniform(-5, 5), rng.uniform(-drift_ppm, drift_ppm))
        for name in (MASTER, *LINES)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="rounds measured after converging")
    parser.add_argument("--trials", type=int, default=10, help="seeds for rounds-to-converge")
    args = parser.parse_args()
    for drift in (0.0, 100.0):
        run = run_kitchen(kitchen(1, drift), args.rounds, converge_only=False)
        errors_us = [e * 1e6 for e in run.errors_s]
        delays_us = [d * 1e6 for d in run.delays_s]
        print(
            f"drift ±{drift:g} ppm: converged after round {run.converged_after}; "
            f"|participant - master| over {len(errors_us)} samples: "
            f"p50 {percentile(errors_us, 0.5):.1f} µs, p99 {percentile(errors_us, 0.99):.1f} µs, "
            f"max {max(errors_us):.1f} µs; delay p50 {percentile(delays_us, 0.5):.0f} µs, "
            f"p99 {percentile(delays_us, 0.99):.0f} µs"
        )
    needed = []
    for seed in range(args.trials):
        run = run_kitchen(kitchen(100 + seed, 100.0), 0, converge_only=True)
        needed.append(run.converged_after)
    done = [n for n in needed if n is not None]
    summary = f"median {statistics.median(done)}, worst {max(done)}" if done else "none converged"
    print(
        f"rounds to converge to 1 ms from ±5 s and ±100 ppm, {args.trials} seeds: "
        f"{needed} ({summary})"
    )


if __name__ == "__main__":
    main()
