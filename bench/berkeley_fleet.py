"""One master and many nodes, each its own process, on loopback: does every node answer
every round, how accurate are they, and what does a round cost the master?

    .venv/bin/python bench/berkeley_fleet.py [--nodes 10 25 50] [--rounds 20]

On a 2-core machine the nodes compete for the CPU with each other, the broker and the
master, so this is a stress test of the measurement, not a picture of a real fleet, where
every node has a host of its own.
"""

import argparse

from fleet import fleet, run_fleet

from clocksync.sim.scenarios import percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--rounds", type=int, default=20, help="rounds measured after converging")
    args = parser.parse_args()
    for count in args.nodes:
        names = [f"line-{index:04d}" for index in range(count)]
        run = run_fleet(fleet(count, names, 5.0, 0.0), rounds=args.rounds, status_interval="0.5")
        if run.converged_after is None:
            print(f"{count} nodes: did not converge")
            continue
        answered = [sum(p.role == "node" for p in s.participants) for s in run.rounds]
        mean_answered = sum(answered) / len(answered)
        errors_us = [e * 1e6 for e in run.errors_s]
        print(
            f"{count} nodes: converged after round {run.converged_after}; "
            f"nodes answering a round: min {min(answered)}, mean {mean_answered:.1f}; "
            f"|node - master| p50 {percentile(errors_us, 0.5):.1f} µs, "
            f"p99 {percentile(errors_us, 0.99):.1f} µs; "
            f"master CPU {run.master_cpu_s / len(run.rounds) * 1e3:.1f} ms a round"
        )


if __name__ == "__main__":
    main()
