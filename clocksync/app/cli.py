"""The `clocksync` command: master, node, timeserver, ask, now, monitor, keygen and demo."""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from clocksync.app import driftfile
from clocksync.app.ask import AskOptions, run_ask
from clocksync.app.commands import CRISTIAN_DEFAULTS, build_parser
from clocksync.app.demo import run_demo
from clocksync.app.logs import WarningThrottle
from clocksync.app.monitor import MonitorOptions, run_monitor
from clocksync.app.nodes import node_for
from clocksync.app.options import (
    clock_from,
    keys_from,
    tls_from,
)
from clocksync.core.clock import SoftwareClock
from clocksync.driver.runner import StopFlag, participant_driver
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import RoundPlan
from clocksync.master.timeserver import TimeServer
from clocksync.protocol.signing import Signer
from clocksync.roles.participant import Participant


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "broker"):
        args.tls = tls_from(parser, args)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WarningThrottle())
    logging.basicConfig(level=getattr(args, "log_level", "warning").upper(), handlers=[handler])
    if args.command == "demo":
        return run_demo(
            scenario=args.scenario,
            seed=args.seed,
            interval_s=args.interval,
            max_rounds=args.max_rounds,
            log_level=args.log_level,
            plot=args.plot,
            web=args.web,
        )
    if args.command == "monitor":
        if args.json and not args.once:
            parser.error("--json needs --once")
        return run_monitor(
            MonitorOptions(
                broker=args.broker,
                site=args.site,
                once=args.once,
                as_json=args.json,
                wait_s=args.wait,
                protocol=args.protocol,
                tls=args.tls,
            )
        )
    if args.command == "keygen":
        return _keygen(parser, args.out)
    if args.command in ("ask", "now"):
        now = args.command == "now"
        options = AskOptions(
            broker=args.broker,
            site=args.site,
            name=args.name,
            samples=args.samples,
            timeout_s=args.timeout,
            offset_s=0.0 if now else args.offset,
            apply=False if now else args.apply,
            as_json=args.json,
            protocol=args.protocol,
            trusted=keys_from(parser, args).trusted,
            tls=args.tls,
            now=now,
        )
        return run_ask(options)
    if args.command == "timeserver":
        server = TimeServer(
            name=args.name,
            site=args.site,
            clock=SoftwareClock(offset_s=args.offset, drift_ppm=args.drift_ppm),
            status_interval_s=args.status_interval,
            keys=keys_from(parser, args),
        )
        return _serve(server, args, busy_poll_s=args.busy_poll)
    clock = clock_from(parser, args)
    if args.command == "master":
        return _serve(_master(parser, args, clock), args)
    if args.sync == "fleet" and args.interval is not None:
        parser.error("--interval needs --sync cristian")
    cristian_only = [key for key in CRISTIAN_DEFAULTS if getattr(args, key) is not None]
    if args.sync == "berkeley" and cristian_only:
        parser.error("--interval, --samples and --timeout need --sync cristian or fleet")
    node = node_for(
        args.sync,
        name=args.name,
        site=args.site,
        clock=clock,
        status_interval_s=args.status_interval,
        protocol=args.protocol,
        keys=keys_from(parser, args),
        interval_s=args.interval,
        samples=args.samples,
        timeout_s=args.timeout,
    )
    return _serve(node, args)


def _keygen(parser: argparse.ArgumentParser, prefix: Path) -> int:
    signer = Signer.generate()
    try:
        private, public = signer.write(prefix)
    except OSError as error:
        parser.error(f"--out: {error}")
    print(f"key {signer.key_id}: private {private}, public {public}")
    return 0


def _serve(role: Participant, args: argparse.Namespace, *, busy_poll_s: float = 0.0) -> int:
    """Run `role` over MQTT until SIGINT or SIGTERM."""
    stop = StopFlag().install()
    # A time server sends nothing to nudge before: it has no --nudge.
    driver = participant_driver(
        role, args.broker, args.protocol, args.tls, chrony_sock=args.chrony_sock,
        busy_poll_s=busy_poll_s, nudge_s=getattr(args, "nudge", 0.0),
    )  # fmt: skip
    try:
        return driver.run(stop)
    finally:
        drift_file = getattr(args, "drift_file", None)
        if drift_file is not None:
            driftfile.save(drift_file, role)


def _master(
    parser: argparse.ArgumentParser, args: argparse.Namespace, clock: SoftwareClock
) -> BerkeleyMaster:
    try:
        plan = RoundPlan(
            interval_s=args.interval,
            samples=args.samples,
            reply_timeout_s=args.reply_timeout,
            min_window_s=args.min_window,
        )
    except ValueError as error:
        parser.error(str(error))
    return BerkeleyMaster(
        name=args.name,
        site=args.site,
        clock=clock,
        plan=plan,
        status_interval_s=args.status_interval,
        timeserver=args.timeserver,
        keys=keys_from(parser, args),
        priority=args.priority,
    )
