"""Real-network scenarios: Berkeley and Cristian over links with injected delay, judged from
the truth signal, beside each link's floor (half its asymmetry).

    .venv/bin/python bench/links.py [--scenarios lan,wifi,busy,wan,bridge,cluster]
        [--rounds 60] [--settle 20]

Every participant is its own process on a private Mosquitto.  Berkeley: the master beside
the broker, the four lines each over its own link (clocksync.testing.netem), drifts within
±100 ppm, 1 s rounds; |line - master| from `--settle` rounds after converging, for
`--rounds` rounds.  Cristian: the bank's time server beside the broker, one device over a
link syncing every second (8 exchanges), drift 100 ppm; |device - server| over the same
span, and how often the device's reported error bound held.  `bridge`: no delay, but the
lines (and the device) on a second Mosquitto bridged to the master's (broker/bridge.conf).
`cluster`: no delay, the master (and the server) on one member of a two-node ejabberd
cluster, the lines (and the device) on the other (broker/ejabberd.yml; needs root).
"""

import argparse
import contextlib
import random
import subprocess

from fleet import STATUS_INTERVAL, TOPOLOGIES, brokers, fleet, run_fleet

from clocksync.protocol.enums import State
from clocksync.sim.delays import Path
from clocksync.sim.scenarios import LINES, percentile
from clocksync.testing.netem import SCENARIOS, DelayLink, floor_s
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes

SITE = "links"


def cristian(
    path: Path | None, syncs: int, settle: int, topology: str = "one"
) -> tuple[list[float], int, int]:
    """|device - server| at every device status after `settle` syncs, for `syncs` more;
    and of those statuses, how many had a bound and how many bounds held.  With no `path`
    the device reaches its broker directly."""
    with brokers(topology) as (server_broker, device_broker), contextlib.ExitStack() as stack:
        device_url = device_broker
        if path is not None:
            device_url = stack.enter_context(contextlib.closing(DelayLink(device_broker, path))).url
        observer = Observer(server_broker, SITE, keep_history=True)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            options = ["--status-interval", STATUS_INTERVAL, "--log-level", "error"]
            server = ClockSpec("bank")
            device = ClockSpec("phone", 0.3, 100.0)
            processes.append(
                subprocess.Popen(
                    participant_command("timeserver", server, server_broker, SITE, options)
                )
            )
            device_options = [*options, "--sync", "cristian", "--interval", "1"]
            processes.append(
                subprocess.Popen(
                    participant_command("node", device, device_url, SITE, device_options)
                )
            )
            observer.pump(settle + 2.0)
            if observer.statuses.get("phone", None) is None:
                raise RuntimeError("the device did not come online")
            since = observer.statuses["phone"].host_time or 0
            observer.pump(float(syncs))
            return _judge(observer, since)
        finally:
            observer.close()
            stop_processes(processes)


def _judge(observer: Observer, since: int) -> tuple[list[float], int, int]:
    assert observer.history is not None
    errors, bounded, held = [], 0, 0
    for status in observer.history.get("phone", []):
        if status.state != State.ONLINE or status.host_time is None or status.host_time < since:
            continue
        reference = observer.offset_at("bank", status.host_time)
        if reference is None or status.host_offset_s is None:
            continue
        error = abs(status.host_offset_s - reference)
        errors.append(error)
        if status.error_bound_s is not None:
            bounded += 1
            held += error <= status.error_bound_s
    return errors, bounded, held


def cell(errors_s: list[float]) -> str:
    micro = [e * 1e6 for e in errors_s]
    return f"{percentile(micro, 0.5):.0f} / {percentile(micro, 0.99):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="lan,wifi,busy,wan,bridge,cluster")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--settle", type=int, default=20)
    args = parser.parse_args()
    print(
        "| link | floor, µs | Berkeley \\|line − master\\|, µs (p50 / p99) "
        "| Cristian \\|device − server\\|, µs (p50 / p99) | bound held | Berkeley delay p50, µs "
        "| round time p50, ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.scenarios.split(","):
        topology = name if name in TOPOLOGIES else "one"
        path = SCENARIOS["loopback" if topology != "one" else name]
        floor = floor_s(path, random.Random(1))
        run = run_fleet(
            fleet(1, LINES, 5.0, 100.0),
            rounds=args.settle + args.rounds,
            settle_rounds=args.settle,
            path=path,
            topology=topology,
        )
        errors, bounded, held = cristian(path, args.rounds, args.settle, topology)
        coverage = f"{held}/{bounded}" if bounded else "no bound"
        delays = [p.delay_s * 1e6 for s in run.rounds for p in s.participants if p.role == "node"]
        print(
            f"| {name} | {floor * 1e6:.0f} | {cell(run.errors_s)} | {cell(errors)} | {coverage} "
            f"| {percentile(delays, 0.5):.0f} | {percentile(run.round_s, 0.5) * 1e3:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
