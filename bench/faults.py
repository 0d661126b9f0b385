"""How a site recovers from faults, measured from outside: a private Mosquitto, two masters
(lab leads, lab-2 stands by) and the four lines, each its own process, with half-second
rounds; the broker, the leader, the standby and a line are crashed (SIGKILL) in turn and
started again after a random 0.2-1 s, and the leader is frozen (SIGSTOP, as a machine cut
off from the broker) for 3 s now and then.

    .venv/bin/python bench/faults.py [--faults 40] [--freezes 4] [--seed 1] [--logs DIR]

Per kind of fault, p50 / max: when the leader was struck, how long until a standby said
it leads; how long the site went without a round; how long after the
restart (or thaw) every participant had published its status again (was connected) and had
answered a round again, and the clocks' spread two rounds after that, from the truth signal;
and how often any clock ran backwards or jumped.  Prints a Markdown table.
"""

import argparse
import itertools
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from fleet import p50_max

from clocksync.testing.chaos import ChaosSite, Fault, Recovery
from clocksync.testing.processes import ClockSpec

MASTERS = [ClockSpec("lab", 0.0), ClockSpec("lab-2", 0.02)]
NODES = [ClockSpec("KMC", -0.03), ClockSpec("MIT", 0.01), ClockSpec("TAPMI", -0.015),
         ClockSpec("SOLS", 0.025)]  # fmt: skip
TIMEOUT_S = 30.0
FROZEN_S = 3.0


def target(site: ChaosSite, fault: Fault, rng: random.Random) -> str:
    if fault is Fault.LEADER:
        return site.leader() or site.masters[0]
    if fault is Fault.STANDBY:
        return site.standby()
    return "broker" if fault is Fault.BROKER else rng.choice(site.nodes)


def summary(label: str, recoveries: list[Recovery]) -> str:
    took_over = [r.took_over_s for r in recoveries if r.took_over_s is not None]
    cells = [
        p50_max(took_over) if took_over else "-",
        p50_max([r.without_rounds_s for r in recoveries]),
        p50_max([r.online_s for r in recoveries]),
        p50_max([r.back_s for r in recoveries]),
        p50_max([r.spread_s * 1e6 for r in recoveries], decimals=0),
    ]
    return f"| {label} | {len(recoveries)} | {' | '.join(cells)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=40, help="crashes, the kinds in turn")
    parser.add_argument("--freezes", type=int, default=4, help="times the leader is frozen")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="keep the participants' logs here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = itertools.cycle([Fault.NODE, Fault.LEADER, Fault.BROKER, Fault.STANDBY])
    results: dict[str, list[Recovery]] = defaultdict(list)
    with (
        tempfile.TemporaryDirectory() as scratch,
        ChaosSite(args.logs or Path(scratch), MASTERS, NODES) as site,
    ):
        print(f"converged: spread {site.converge() * 1e6:.0f} µs")
        for fault in itertools.islice(kinds, args.faults):
            downtime_s = rng.uniform(0.2, 1.0)
            recovery = site.crash(fault, target(site, fault, rng), downtime_s, TIMEOUT_S)
            results[f"kill -9 {fault}"].append(recovery)
        for _ in range(args.freezes):
            leader = target(site, Fault.LEADER, rng)
            results["leader frozen 3 s"].append(site.freeze(leader, FROZEN_S, TIMEOUT_S))
        jumps = site.jumps()
    print(
        "| fault | n | a standby leads after, s | without a round, s "
        "| all online after restart, s | all in a round after restart, s "
        "| spread 2 rounds later, µs |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, recoveries in results.items():
        print(summary(label, recoveries))
    print(f"clock jumps or backward steps: {len(jumps)}")
    for jump in jumps:
        print(f"  {jump}")


if __name__ == "__main__":
    main()
