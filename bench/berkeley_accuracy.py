"""Berkeley accuracy on loopback: the master and the four lines, judged from the truth signal.

    .venv/bin/python bench/berkeley_accuracy.py [--rounds 60] [--settle 20] [--trials 10]
        [--cases 0:1,100:1,100:16]

Prints, at drift 0 and at ±100 ppm with 1 s rounds, and at ±100 ppm with 16 s rounds: p50,
p99 and max of |participant - master| from `--settle` rounds after convergence (the clocks
learn their frequencies meanwhile) for `--rounds` rounds (a quarter as many at 16 s), and
the master's measured delays; then the rounds needed to bring clocks that start within ±5 s
and ±100 ppm to within 1 ms of the master, over several seeds.
"""

import argparse
import statistics

from fleet import fleet, run_fleet

from clocksync.sim.scenarios import LINES, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="rounds measured after converging")
    parser.add_argument("--settle", type=int, default=20, help="rounds not counted at first")
    parser.add_argument("--trials", type=int, default=10, help="seeds for rounds-to-converge")
    parser.add_argument(
        "--cases",
        default="0:1,100:1,100:16",
        help="DRIFT_PPM:ROUND_S pairs to measure (default: %(default)s)",
    )
    args = parser.parse_args()
    cases = [tuple(float(part) for part in case.split(":")) for case in args.cases.split(",")]
    for drift, interval in cases:
        rounds = args.rounds if interval == 1.0 else args.rounds // 4
        run = run_fleet(
            fleet(1, LINES, 5.0, drift),
            rounds=args.settle + rounds,
            interval_s=interval,
            settle_rounds=args.settle,
        )
        errors_us = [e * 1e6 for e in run.errors_s]
        delays_us = [
            p.delay_s * 1e6 for s in run.rounds for p in s.participants if p.role == "node"
        ]
        print(
            f"drift ±{drift:g} ppm, {interval:g} s rounds: "
            f"converged after round {run.converged_after}; "
            f"|participant - master| over {len(errors_us)} samples: "
            f"p50 {percentile(errors_us, 0.5):.1f} µs, p99 {percentile(errors_us, 0.99):.1f} µs, "
            f"max {max(errors_us):.1f} µs; delay p50 {percentile(delays_us, 0.5):.0f} µs, "
            f"p99 {percentile(delays_us, 0.99):.0f} µs"
        )
    needed = [
        run_fleet(
            fleet(100 + seed, LINES, 5.0, 100.0), rounds=0, converge_only=True
        ).converged_after
        for seed in range(args.trials)
    ]
    done = [n for n in needed if n is not None]
    summary = f"median {statistics.median(done)}, worst {max(done)}" if done else "none converged"
    print(
        f"rounds to converge to 1 ms from ±5 s and ±100 ppm, {args.trials} seeds: "
        f"{needed} ({summary})"
    )


if __name__ == "__main__":
    main()
