"""The `clocksync` command: master, node and demo."""

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence

from clocksync import __version__
from clocksync.clock import MAX_DRIFT_PPM, Discipline, SoftwareClock
from clocksync.demo import run_demo
from clocksync.logthrottle import WarningThrottle
from clocksync.participant import StopFlag
from clocksync.topics import check_name
from clocksync.transport import BROKER_ENV, DEFAULT_BROKER, BrokerUrl
from master.berkeley import BerkeleyMaster
from master.rounds import MAX_REPLY_TIMEOUT_S, RoundPlan
from nodes.berkeley import BerkeleyNode


def _number(check: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and check(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return value

    return parse


finite = _number(lambda _: True, "finite")
positive = _number(lambda value: value > 0, "positive")
drift = _number(lambda value: abs(value) <= MAX_DRIFT_PPM, f"within ±{MAX_DRIFT_PPM:g} ppm")


def _name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _broker(text: str) -> BrokerUrl:
    try:
        return BrokerUrl.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return int(text)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        type=_broker,
        default=os.environ.get(BROKER_ENV, DEFAULT_BROKER),
        help=f"mqtt://[user@]host[:port] (default: ${BROKER_ENV} or {DEFAULT_BROKER}); "
        "the password, if any, from $CLOCKSYNC_PASSWORD",
    )
    parser.add_argument(
        "--site",
        type=_name,
        default="default",
        help="the site: one topic tree per site (default: default)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def _clock_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clock")
    group.add_argument(
        "--offset",
        type=finite,
        default=0.0,
        metavar="SECONDS",
        help="simulate a clock this far from the host's (default: 0)",
    )
    group.add_argument(
        "--drift-ppm",
        type=drift,
        default=0.0,
        metavar="PPM",
        help="simulate a frequency error in parts per million (default: 0)",
    )
    group.add_argument(
        "--max-slew-ppm",
        type=positive,
        default=Discipline.max_slew_ppm,
        metavar="PPM",
        help="fastest slew (default: %(default)g, as chrony)",
    )
    group.add_argument(
        "--makestep",
        nargs=2,
        metavar=("THRESHOLD", "LIMIT"),
        default=[Discipline.step_threshold_s, Discipline.backward_step_limit],
        help="step corrections of THRESHOLD seconds or more: forwards always, "
        "backwards only in the first LIMIT updates (default: 0.1 3)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clocksync",
        description="Clock synchronization for device fleets that share an MQTT broker.",
    )
    parser.add_argument("--version", action="version", version=f"clocksync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    master = commands.add_parser("master", help="run a Berkeley master")
    _common(master)
    master.add_argument(
        "--name",
        type=_name,
        default="master",
        help="the master's participant name (default: master)",
    )
    master.add_argument(
        "--interval",
        type=positive,
        default=RoundPlan.interval_s,
        metavar="SECONDS",
        help="seconds between rounds (default: %(default)g)",
    )
    master.add_argument(
        "--samples",
        type=_positive_int,
        default=RoundPlan.samples,
        help="polls per round; each node's lowest-delay answer counts (default: %(default)s)",
    )
    master.add_argument(
        "--reply-timeout",
        type=positive,
        metavar="SECONDS",
        help="nodes that have not answered this long after the round starts "
        f"are left out of it (default: half the interval, at most "
        f"{MAX_REPLY_TIMEOUT_S:g})",
    )
    master.add_argument(
        "--min-window",
        type=positive,
        default=RoundPlan.min_window_s,
        metavar="SECONDS",
        help="narrowest window around the median offset whose clocks are "
        "averaged (default: %(default)g)",
    )
    master.add_argument(
        "--status-interval",
        type=positive,
        metavar="SECONDS",
        help="publish status at least this often (default: the interval)",
    )
    _clock_options(master)

    node = commands.add_parser("node", help="run a node disciplined by the master")
    _common(node)
    node.add_argument("--name", type=_name, required=True, help="this node's name, unique")
    node.add_argument(
        "--status-interval",
        type=positive,
        default=1.0,
        metavar="SECONDS",
        help="publish status at least this often (default: 1)",
    )
    _clock_options(node)

    demo = commands.add_parser("demo", help="the Manipal Foodie kitchen on a private broker")
    demo.add_argument("--seed", type=int, default=7, help="random seed for the clocks")
    demo.add_argument("--interval", type=positive, default=1.0, metavar="SECONDS")
    demo.add_argument("--max-rounds", type=_positive_int, default=20)
    demo.add_argument(
        "--log-level",
        default="error",
        choices=["debug", "info", "warning", "error"],
        help="log level of the demo's participants (default: error)",
    )
    return parser


def _clock(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SoftwareClock:
    threshold_text, limit_text = args.makestep
    try:
        discipline = Discipline(
            max_slew_ppm=args.max_slew_ppm,
            step_threshold_s=float(threshold_text),
            backward_step_limit=int(limit_text),
        )
    except ValueError as error:
        parser.error(f"--makestep/--max-slew-ppm: {error}")
    return SoftwareClock(offset_s=args.offset, drift_ppm=args.drift_ppm, discipline=discipline)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WarningThrottle())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    if args.command == "demo":
        return run_demo(
            seed=args.seed,
            interval_s=args.interval,
            max_rounds=args.max_rounds,
            log_level=args.log_level,
        )
    stop = StopFlag().install()
    clock = _clock(parser, args)
    if args.command == "master":
        try:
            plan = RoundPlan(
                interval_s=args.interval,
                samples=args.samples,
                reply_timeout_s=args.reply_timeout,
                min_window_s=args.min_window,
            )
        except ValueError as error:
            parser.error(str(error))
        master = BerkeleyMaster(
            name=args.name,
            site=args.site,
            broker=args.broker,
            clock=clock,
            plan=plan,
            status_interval_s=args.status_interval,
        )
        return master.run(stop)
    node = BerkeleyNode(
        name=args.name,
        site=args.site,
        broker=args.broker,
        clock=clock,
        status_interval_s=args.status_interval,
    )
    return node.run(stop)
