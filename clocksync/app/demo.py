"""`clocksync demo`: the Manipal Foodie kitchen on a private broker (and, through
clocksync.app.buddy, the Manipal Buddy devices).

Starts its own Mosquitto on a free loopback port, the master (the testing lab's clock) and
the four production lines as separate processes with seeded random offsets (±5 s) and drifts
(±100 ppm), prints every round's spread, as the master measured it and as the truth signal
shows it, until the kitchen agrees to within a millisecond, then stops all it started.
With `--plot FILE.png` it also draws every line's offset from the master over time; with
`--web` the broker also serves web/ to browsers and the kitchen runs until interrupted.
"""

import random
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from clocksync.app.buddy import run_buddy
from clocksync.app.plot import plot_offsets
from clocksync.core.clock import NS_PER_S
from clocksync.testing.localbroker import (
    WEB,
    WEB_PORT,
    BrokerUnavailableError,
    LocalMosquitto,
    serving_web,
)
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes

LINES = ("KMC", "MIT", "TAPMI", "SOLS")
MASTER = "lab"
SITE = "manipal-foodie"
CONVERGED_S = 0.001
PLOT_AFTER_ROUNDS = 3
"""Rounds watched after converging, with --plot."""


def kitchen(seed: int) -> list[ClockSpec]:
    """The master and the four lines, each with a seeded random offset and drift."""
    rng = random.Random(seed)
    return [
        ClockSpec(name, rng.uniform(-5, 5), rng.uniform(-100, 100)) for name in (MASTER, *LINES)
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:12.3f} ms"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(
    *,
    scenario: str,
    seed: int,
    interval_s: float,
    max_rounds: int,
    log_level: str,
    plot: Path | None = None,
    web: bool = False,
) -> int:
    """Run a demo scenario on a private broker; on SIGINT or SIGTERM stop everything it
    started and return 130 (0 with `web`, which runs until then)."""
    signal.signal(signal.SIGTERM, _interrupt)
    processes: list[subprocess.Popen[bytes]] = []
    if web and not WEB.is_dir():
        print(f"clocksync demo: --web serves {WEB}, found only in a clone", file=sys.stderr)
        return 1
    try:
        broker = LocalMosquitto(config=serving_web(WEB) if web else None).start()
    except BrokerUnavailableError as error:
        print(f"clocksync demo: {error}", file=sys.stderr)
        return 1
    try:
        if scenario == "buddy":
            return run_buddy(broker, processes)
        return _kitchen(
            broker,
            processes,
            seed=seed,
            interval_s=interval_s,
            max_rounds=max_rounds,
            log_level=log_level,
            plot=plot,
        )
    except KeyboardInterrupt:
        print("clocksync demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 0 if web else 130
    finally:
        stop_processes(processes)
        broker.stop()


def _kitchen(
    broker: LocalMosquitto,
    processes: list[subprocess.Popen[bytes]],
    *,
    seed: int,
    interval_s: float,
    max_rounds: int,
    log_level: str,
    plot: Path | None,
) -> int:
    clocks = kitchen(seed)
    observer = Observer(broker.url, SITE, keep_history=plot is not None)
    try:
        print(f"Manipal Foodie: broker {broker.url}, site {SITE}, rounds every {interval_s:g} s")
        if WEB_PORT in broker.ports:
            print(f"  the kitchen in a browser: http://127.0.0.1:{broker.ports[WEB_PORT]}/")
        for clock in clocks:
            role = "master" if clock.name == MASTER else "node"
            print(
                f"  {clock.name:6} {role:6} offset {clock.offset_s:+.3f} s, "
                f"drift {clock.drift_ppm:+.1f} ppm"
            )
        master, *lines = clocks
        common = ["--log-level", log_level]
        if plot is not None:  # more points to draw
            common += ["--status-interval", repr(interval_s / 4)]
        for line in lines:
            command = participant_command("node", line, broker.url, SITE, common)
            processes.append(subprocess.Popen(command))
        if not observer.wait_for(lambda: len(observer.true_offsets()) == len(lines), 15):
            print("clocksync demo: the lines did not come online", file=sys.stderr)
            return 1
        command = participant_command(
            "master", master, broker.url, SITE, [*common, "--interval", repr(interval_s)]
        )
        processes.append(subprocess.Popen(command))
        print(f"{'round':>5} {'measured spread':>18} {'true spread':>15}  excluded")
        result = _watch(observer, interval_s, max_rounds, len(clocks))
        if WEB_PORT in broker.ports:
            print("the kitchen keeps running for the browser; Ctrl-C stops it")
            while True:
                observer.pump(1.0)
        if plot is not None:
            observer.pump(PLOT_AFTER_ROUNDS * interval_s)  # to show that it stays converged
            _draw(observer, plot, seed)
        return result
    finally:
        observer.close()


def _draw(observer: Observer, path: Path, seed: int) -> None:
    """Each line's truth offset at each of its statuses, minus the master's then."""
    history = observer.history or {}
    master_times = [status.host_time or 0 for status in history.get(MASTER, [])]
    if not master_times:
        print("clocksync demo: no status from the master to plot against", file=sys.stderr)
        return
    start = master_times[0]
    series: dict[str, list[tuple[float, float]]] = {}
    for name, statuses in history.items():
        if name == MASTER:
            continue
        points = series.setdefault(name, [])
        for status in statuses:
            at = status.host_time or 0
            master = observer.offset_at(MASTER, at)
            if master is not None and status.host_offset_s is not None:
                points.append(((at - start) / NS_PER_S, status.host_offset_s - master))
    plot_offsets(series, path, f"Manipal Foodie, seed {seed}: the lines' offsets from the master")
    print(f"plotted every clock's offset from the master to {path}")


def _watch(observer: Observer, interval_s: float, max_rounds: int, participants: int) -> int:
    seen = 0
    while seen < max_rounds:
        if not observer.wait_for_rounds(seen + 1, 10 * interval_s + 10):
            print(
                "clocksync demo: no round summary arrived; is the master running?", file=sys.stderr
            )
            return 1
        summary = observer.rounds[seen]
        seen += 1
        observer.pump(interval_s / 4)
        truth = observer.true_offsets()
        true_spread = max(truth.values()) - min(truth.values())
        excluded = ", ".join(p.name for p in summary.participants if p.excluded) or "-"
        print(f"{summary.round:5d} {_ms(summary.spread_s):>18} {_ms(true_spread):>15}  {excluded}")
        complete = len(summary.participants) == participants and len(truth) == participants
        if complete and summary.spread_s <= CONVERGED_S and true_spread <= CONVERGED_S:
            print(
                f"converged: all {participants} clocks within {_ms(true_spread).strip()} "
                f"of each other after {summary.round} rounds"
            )
            return 0
    print(f"clocksync demo: not converged after {max_rounds} rounds", file=sys.stderr)
    return 1
