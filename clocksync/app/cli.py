"""The `clocksync` command: master, node, timeserver, ask and demo."""

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence

from clocksync import __version__
from clocksync.app.ask import AskOptions, run_ask
from clocksync.app.demo import run_demo
from clocksync.app.logs import WarningThrottle
from clocksync.core.clock import MAX_DRIFT_PPM, Discipline, SoftwareClock
from clocksync.driver.runner import Driver, StopFlag, client_id, link_for
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.rounds import MAX_REPLY_TIMEOUT_S, RoundPlan
from clocksync.master.timeserver import TimeServer
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.nodes.cristian import CristianNode
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.topics import check_name
from clocksync.roles.participant import Participant
from clocksync.transport.url import BROKER_ENV, DEFAULT_BROKER, BrokerUrl

CRISTIAN_DEFAULTS = {"interval": 1.0, "samples": 8, "timeout": 0.5}
BUSY_POLL_S = 0.002
"""A client's next request usually comes within this of the last answer (see Driver)."""


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
non_negative = _number(lambda value: value >= 0, "zero or more")
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


def _mqtt_version(text: str) -> MqttVersion:
    try:
        return MqttVersion(text)
    except ValueError:
        choices = ", ".join(MqttVersion)
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {choices})"
        ) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return int(text)


def _common(parser: argparse.ArgumentParser, log_level: str = "info") -> None:
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
        "--log-level", default=log_level, choices=["debug", "info", "warning", "error"]
    )


def _protocol(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--protocol",
        type=_mqtt_version,
        metavar="{" + ",".join(MqttVersion) + "}",
        default=MqttVersion.V5,
        help="MQTT version to speak; with 3.1.1 the reply topic and correlation data "
        "travel in the payload (default: 5)",
    )


def _offset_options(parser: argparse.ArgumentParser, *, drift_too: bool = True) -> None:
    group = parser.add_argument_group("clock")
    group.add_argument(
        "--offset",
        type=finite,
        default=0.0,
        metavar="SECONDS",
        help="simulate a clock this far from the host's (default: 0)",
    )
    if drift_too:
        group.add_argument(
            "--drift-ppm",
            type=drift,
            default=0.0,
            metavar="PPM",
            help="simulate a frequency error in parts per million (default: 0)",
        )


def _clock_options(parser: argparse.ArgumentParser) -> None:
    _offset_options(parser)
    group = parser.add_argument_group("discipline")
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
        default=[Discipline.step_threshold_s, Discipline.first_updates],
        help="step corrections of THRESHOLD seconds or more: forwards always, "
        "backwards only in the first LIMIT updates (default: 0.1 3)",
    )
    group.add_argument(
        "--max-change",
        type=positive,
        default=Discipline.max_change_s,
        metavar="SECONDS",
        help="after the first LIMIT updates, refuse any correction larger than this, "
        "forwards or backwards (default: %(default)g)",
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
    master.add_argument(
        "--no-timeserver",
        dest="timeserver",
        action="store_false",
        help="do not answer Cristian time requests (by default the master does)",
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
    node.add_argument(
        "--sync",
        choices=["berkeley", "cristian"],
        default="berkeley",
        help="follow the master's Berkeley rounds, or ask the time server (default: berkeley)",
    )
    cristian = node.add_argument_group("with --sync cristian")
    cristian.add_argument(
        "--interval",
        type=positive,
        metavar="SECONDS",
        help=f"seconds between syncs (default: {CRISTIAN_DEFAULTS['interval']:g})",
    )
    cristian.add_argument(
        "--samples",
        type=_positive_int,
        help="exchanges per sync; the lowest-delay one counts "
        f"(default: {CRISTIAN_DEFAULTS['samples']:g})",
    )
    cristian.add_argument(
        "--timeout",
        type=positive,
        metavar="SECONDS",
        help=f"give up on an answer after this (default: {CRISTIAN_DEFAULTS['timeout']:g})",
    )
    _protocol(cristian)
    _clock_options(node)

    timeserver = commands.add_parser(
        "timeserver", help="answer Cristian time requests from this clock, and nothing else"
    )
    _common(timeserver)
    timeserver.add_argument(
        "--name",
        type=_name,
        default="timeserver",
        help="the server's participant name (default: timeserver)",
    )
    timeserver.add_argument("--status-interval", type=positive, default=1.0, metavar="SECONDS")
    timeserver.add_argument(
        "--busy-poll",
        type=non_negative,
        default=BUSY_POLL_S,
        metavar="SECONDS",
        help="after a request, poll instead of sleeping this long, so the next one is "
        "answered without a wake-up delay; 0 turns it off (default: %(default)g)",
    )
    _offset_options(timeserver)

    ask = commands.add_parser(
        "ask", help="measure this clock against the time server (Cristian) and print it"
    )
    _common(ask, log_level="warning")
    ask.add_argument(
        "--name", type=_name, required=True, help="this client's name; answers come to it"
    )
    ask.add_argument(
        "--samples",
        type=_positive_int,
        default=CRISTIAN_DEFAULTS["samples"],
        help="exchanges; the lowest-delay one counts (default: %(default)s)",
    )
    ask.add_argument(
        "--timeout",
        type=positive,
        default=1.0,
        metavar="SECONDS",
        help="give up on an answer (and on the broker) after this (default: %(default)g)",
    )
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument(
        "--apply",
        action="store_true",
        help="correct this process's clock by the offset, then measure again",
    )
    _protocol(ask)
    _offset_options(ask, drift_too=False)

    demo = commands.add_parser(
        "demo", help="the Manipal Foodie kitchen, or the Manipal Buddy devices, on a private broker"
    )
    demo.add_argument(
        "scenario",
        nargs="?",
        choices=["kitchen", "buddy"],
        default="kitchen",
        help="kitchen: Berkeley rounds; buddy: two devices ask the bank (default: kitchen)",
    )
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
            first_updates=int(limit_text),
            max_change_s=args.max_change,
        )
    except ValueError as error:
        parser.error(f"--makestep/--max-slew-ppm/--max-change: {error}")
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
            scenario=args.scenario,
            seed=args.seed,
            interval_s=args.interval,
            max_rounds=args.max_rounds,
            log_level=args.log_level,
        )
    if args.command == "ask":
        options = AskOptions(
            broker=args.broker,
            site=args.site,
            name=args.name,
            samples=args.samples,
            timeout_s=args.timeout,
            offset_s=args.offset,
            apply=args.apply,
            as_json=args.json,
            protocol=args.protocol,
        )
        return run_ask(options)
    if args.command == "timeserver":
        server = TimeServer(
            name=args.name,
            site=args.site,
            clock=SoftwareClock(offset_s=args.offset, drift_ppm=args.drift_ppm),
            status_interval_s=args.status_interval,
        )
        return _serve(server, args, busy_poll_s=args.busy_poll)
    clock = _clock(parser, args)
    if args.command == "master":
        return _serve(_master(parser, args, clock), args)
    if args.sync == "cristian":
        return _serve(_cristian_node(args, clock), args, protocol=args.protocol)
    cristian_only = [key for key in CRISTIAN_DEFAULTS if getattr(args, key) is not None]
    if cristian_only or args.protocol != MqttVersion.V5:
        parser.error("--interval, --samples, --timeout and --protocol need --sync cristian")
    node = BerkeleyNode(
        name=args.name, site=args.site, clock=clock, status_interval_s=args.status_interval
    )
    return _serve(node, args)


def _serve(
    role: Participant,
    args: argparse.Namespace,
    *,
    busy_poll_s: float = 0.0,
    protocol: MqttVersion = MqttVersion.V5,
) -> int:
    """Run `role` over MQTT until SIGINT or SIGTERM."""
    stop = StopFlag().install()
    link = link_for(role, args.broker, client_id(args.site, role.name), protocol)
    return Driver(role, link, busy_poll_s=busy_poll_s).run(stop)


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
    )


def _cristian_node(args: argparse.Namespace, clock: SoftwareClock) -> CristianNode:
    def option(key: str) -> float:
        value = getattr(args, key)
        return float(CRISTIAN_DEFAULTS[key] if value is None else value)

    return CristianNode(
        name=args.name,
        site=args.site,
        clock=clock,
        interval_s=option("interval"),
        samples=int(option("samples")),
        timeout_s=option("timeout"),
        status_interval_s=args.status_interval,
        protocol=args.protocol,
    )
