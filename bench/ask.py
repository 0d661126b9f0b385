"""`clocksync ask` as a script runs it: fresh processes, one burst each, judged from truth.

    .venv/bin/python bench/ask.py --runs 20 [--broker default|nodelay] [--load 2]

A time server (`clocksync timeserver`, its clock `--server-offset` s off its host's) on a
private Mosquitto; `--runs` times, a new `clocksync ask --json` process (its clock 2.5 s
off) makes one burst of 8 exchanges.  Its error is the offset it printed less the truth
(the server's truth signal less the client's `client_host_offset_s`).  Printed: |error|
p50 / p99 / max, the median signed error (a bias of one sign shows there), the bound p50
and how many runs lay within the bound they printed.  `--load N` runs N busy processes
meanwhile (not niced).
"""

import argparse
import json
import statistics
import subprocess
import sys

from fleet import SITE
from steady import BROKERS, busy

from clocksync.sim.scenarios import percentile
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes

CLIENT_OFFSET_S = 2.5


def ask(broker: str, name: str) -> dict[str, object]:
    command = [sys.executable, "-m", "clocksync", "ask", "--broker", broker, "--site", SITE]
    command += ["--name", name, "--offset", str(CLIENT_OFFSET_S), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    report: dict[str, object] = json.loads(done.stdout)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--broker", choices=sorted(BROKERS), default="default")
    parser.add_argument("--load", type=int, default=0, help="busy processes meanwhile")
    parser.add_argument("--server-offset", type=float, default=0.8)
    parser.add_argument("--server-options", default="", help="more options for the server")
    args = parser.parse_args()
    with LocalMosquitto(config=BROKERS[args.broker].format(port=0)) as broker:
        observer = Observer(broker.url, SITE)
        server = subprocess.Popen(
            participant_command(
                "timeserver",
                ClockSpec("bank", args.server_offset),
                broker.url,
                SITE,
                args.server_options.split(),
            )
        )
        try:
            assert observer.link.wait_until_ready(10)
            assert observer.wait_for(lambda: "bank" in observer.true_offsets(), 15)
            errors, bounds = [], []
            with busy(args.load, 0):
                for run in range(args.runs):
                    report = ask(str(broker.url), f"ask-{run}")
                    observer.pump(0.05)
                    truth = observer.true_offsets()["bank"] - float(report["client_host_offset_s"])  # type: ignore[arg-type]
                    errors.append(float(report["offset_s"]) - truth)  # type: ignore[arg-type]
                    bounds.append(float(report["error_bound_s"]))  # type: ignore[arg-type]
        finally:
            observer.close()
            stop_processes([server])
    magnitudes = [abs(e) * 1e6 for e in errors]
    held = sum(abs(e) <= b for e, b in zip(errors, bounds, strict=True))
    print(
        f"{args.runs} runs, broker {args.broker}, load {args.load}: |error| "
        f"p50 {percentile(magnitudes, 0.5):.1f} µs, p99 {percentile(magnitudes, 0.99):.1f} µs, "
        f"max {max(magnitudes):.1f} µs; signed median {statistics.median(errors) * 1e6:+.1f} µs; "
        f"bound p50 {percentile([b * 1e6 for b in bounds], 0.5):.1f} µs, held {held} of "
        f"{args.runs}"
    )


if __name__ == "__main__":
    main()
