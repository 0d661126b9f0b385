"""A swarm of fleet nodes in one process: each its own MQTT connection, its own clock and its
own exchanges with the leader, all on one thread (clocksync.driver.many).

    .venv/bin/python bench/swarm.py --broker URL --site SITE --first 0 --count 2500 --out F

bench/scale.py starts several.  On SIGTERM it says goodbye on every link and writes to
`--out` how many of its nodes had their answer in each round, and how many applied each
round's result.  It runs at a lower priority
(`--nice`): it stands in for devices with processors of their own.
"""

import argparse
import json
import logging
import os
import random
import resource
from collections import Counter
from pathlib import Path

from clocksync.core.clock import SoftwareClock
from clocksync.driver.many import Multiplexer
from clocksync.driver.runner import Driver, StopFlag, client_id, link_for
from clocksync.nodes.fleet import ANSWER_TIMEOUT_S, FleetNode
from clocksync.transport.url import BrokerUrl


def fleet_node(site: str, index: int, args: argparse.Namespace) -> FleetNode:
    """Node `swarm-INDEX`, its clock seeded from the swarm's seed and its index."""
    rng = random.Random(f"{args.seed}-{index}")
    clock = SoftwareClock(
        offset_s=rng.uniform(-args.offset, args.offset),
        drift_ppm=rng.uniform(-args.drift_ppm, args.drift_ppm),
    )
    return FleetNode(
        name=f"swarm-{index}",
        site=site,
        clock=clock,
        status_interval_s=args.status_interval,
        timeout_s=args.timeout,
        rng=rng,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", type=BrokerUrl.parse, required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--offset", type=float, default=1.0, help="clocks start ±this, s")
    parser.add_argument("--drift-ppm", type=float, default=100.0)
    parser.add_argument("--status-interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=ANSWER_TIMEOUT_S, help="answer wait, s")
    parser.add_argument("--connect-per-s", type=float, default=1000.0)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--gather", type=float, default=0.005, metavar="SECONDS")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    # The swarm stands in for devices with processors of their own: on the bench's shared
    # cores it yields to the master and the broker it measures.
    os.nice(args.nice)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nodes = [fleet_node(args.site, args.first + i, args) for i in range(args.count)]
    drivers = [
        # No nudge: thousands of nodes share one thread and two cores with the master here,
        # and a spin before each ask would hold up every other node's link.
        Driver(node, link_for(node, args.broker, client_id(args.site, node.name), nudge_s=0))
        for node in nodes
    ]
    multiplexer = Multiplexer(drivers, connect_per_s=args.connect_per_s, gather_s=args.gather)
    stop = StopFlag().install()
    corrected: Counter[int] = Counter()
    answered: Counter[int] = Counter()
    seen = [(0, 0)] * len(nodes)
    while not stop.requested:
        for index in multiplexer.step(0.1):
            node = nodes[index]
            now = (node.measured_through, node.corrected_through)
            if now != seen[index]:
                if now[0] != seen[index][0]:
                    answered[now[0]] += 1
                if now[1] != seen[index][1]:
                    corrected[now[1]] += 1
                seen[index] = now
    # The counts first: saying goodbye on thousands of links can outlast the bench's
    # patience with a stopping process.
    counts = {"nodes": len(nodes), "answered": answered, "corrected": corrected}
    args.out.write_text(json.dumps(counts))
    for driver in drivers:
        driver.close()


if __name__ == "__main__":
    main()
