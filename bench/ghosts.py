"""What a flood of ghost statuses does to a site: a private Mosquitto, the lab's master and
the four lines, each its own process; then retained "online" statuses for names no process
has are published (1,000, then 10,000 in all), and finally deleted.

    .venv/bin/python bench/ghosts.py [--interval 1.0] [--rounds 10]

For each phase, over `--rounds` rounds watched from outside: how far apart the round
summaries came, the lines' spread after each round (truth signal, p50 / max), the polls sent
to ghosts in a round at most, the round summary's size, and the master's CPU a round.
Prints a Markdown table.
"""

import argparse
import tempfile
from pathlib import Path

from fleet import cpu_seconds, p50_max

from clocksync.testing.chaos import ChaosSite
from clocksync.testing.ghosts import PollWatcher, Watched, ghost_status
from clocksync.testing.processes import ClockSpec

LINES = [ClockSpec("KMC", -0.03), ClockSpec("MIT", 0.01), ClockSpec("TAPMI", -0.015),
         ClockSpec("SOLS", 0.025)]  # fmt: skip


def row(phase: str, watched: Watched, cpu_s: float) -> str:
    spreads_us = p50_max([spread * 1e6 for spread in watched.spreads_s], decimals=0)
    rounds = len(watched.arrivals)
    return (
        f"| {phase} | {watched.period_s:.3f} | {spreads_us} | {watched.all_answered}/{rounds} "
        f"| {max(watched.ghost_polls)} | {max(watched.summary_bytes)} "
        f"| {cpu_s / rounds * 1e3:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--rounds", type=int, default=10, help="rounds watched per phase")
    args = parser.parse_args()
    print(
        "| ghosts | s between rounds | spread, µs (p50 / max) | rounds every line answered "
        "| ghost polls a round, max | summary bytes | master CPU a round, ms |"
    )
    print("|---|---|---|---|---|---|---|")
    with (
        tempfile.TemporaryDirectory() as logs,
        ChaosSite(Path(logs), [ClockSpec("lab")], LINES, interval_s=args.interval) as site,
    ):
        site.converge()
        master = site.fleet.processes["lab"].pid
        watcher = PollWatcher(site)
        ghosts = [f"ghost-{index:05d}" for index in range(10_000)]
        phases = [("none", {}), ("1,000", ghosts[:1000]), ("10,000", ghosts[1000:])]
        try:
            for phase, added in phases:
                watcher.retain_statuses({name: ghost_status(name) for name in added})
                watcher.pump(2 * args.interval)
                cpu_before = cpu_seconds(master)
                watched = watcher.watch(args.rounds)
                print(row(phase, watched, cpu_seconds(master) - cpu_before), flush=True)
            watcher.retain_statuses(dict.fromkeys(ghosts, b""))
            watcher.pump(2 * args.interval)
            cpu_before = cpu_seconds(master)
            watched = watcher.watch(args.rounds)
            print(row("10,000 deleted", watched, cpu_seconds(master) - cpu_before))
        finally:
            watcher.link.close([])


if __name__ == "__main__":
    main()
