"""The `clocksync` command line: its subcommands and their options (clocksync.app.cli
runs them)."""

import argparse
from pathlib import Path
from typing import TypeAlias

from clocksync import __version__
from clocksync.app.options import (
    chrony_option,
    clock_options,
    common_options,
    key_options,
    non_negative,
    non_negative_int,
    nudge_option,
    offset_options,
    participant_name,
    positive,
    positive_int,
    protocol_option,
)
from clocksync.master.rounds import MAX_REPLY_TIMEOUT_S, RoundPlan
from clocksync.nodes.fleet import ANSWER_TIMEOUT_S

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
CRISTIAN_DEFAULTS = {"interval": 1.0, "samples": 8, "timeout": 0.5}
FLEET_DEFAULTS = {"samples": 1, "timeout": ANSWER_TIMEOUT_S}
"""A fleet node asks once a round: the leader's answers are its whole per-node cost, and
the node's history filters across rounds what one exchange does not."""
BUSY_POLL_S = 0.002
"""A client's next request usually comes within this of the last answer (see Driver)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clocksync",
        description="Clock synchronization for device fleets that share an MQTT broker.",
    )
    parser.add_argument("--version", action="version", version=f"clocksync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_master(commands)
    _add_node(commands)
    _add_timeserver(commands)
    _add_ask(commands)
    _add_now(commands)
    _add_monitor(commands)
    _add_keygen(commands)
    _add_demo(commands)
    return parser


def _add_master(commands: Commands) -> None:
    """`clocksync master`: a Berkeley master (and, unless told not, a time server)."""
    master = commands.add_parser("master", help="run a Berkeley master")
    common_options(master)
    master.add_argument(
        "--name",
        type=participant_name,
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
        type=positive_int,
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
        "--priority",
        type=non_negative_int,
        default=0,
        help="of several masters of a site, the highest priority leads, the first name "
        "breaking a tie; a leader keeps the lead while it lives (default: 0)",
    )
    master.add_argument(
        "--no-timeserver",
        dest="timeserver",
        action="store_false",
        help="do not answer Cristian time requests (by default the master does)",
    )
    protocol_option(master)
    clock_options(master)
    nudge_option(master)
    chrony_option(master)
    key_options(
        master,
        sign="polls, corrections, round summaries and time answers",
        trust="replies from nodes",
    )


def _add_node(commands: Commands) -> None:
    """`clocksync node`: a node kept by Berkeley rounds or by asking a time server."""
    node = commands.add_parser("node", help="run a node disciplined by the master")
    common_options(node)
    node.add_argument(
        "--name", type=participant_name, required=True, help="this node's name, unique"
    )
    node.add_argument(
        "--status-interval",
        type=positive,
        default=1.0,
        metavar="SECONDS",
        help="publish status at least this often (default: 1)",
    )
    node.add_argument(
        "--sync",
        choices=["berkeley", "fleet", "cristian"],
        default="berkeley",
        help="follow the master's Berkeley rounds, polled by it; follow them by asking the "
        "master's time, as one of a large fleet; or ask the time server (default: berkeley)",
    )
    cristian = node.add_argument_group("with --sync cristian (and --samples, --timeout: fleet)")
    cristian.add_argument(
        "--interval",
        type=positive,
        metavar="SECONDS",
        help=f"seconds between syncs (default: {CRISTIAN_DEFAULTS['interval']:g})",
    )
    cristian.add_argument(
        "--samples",
        type=positive_int,
        help="exchanges per sync or fleet round; the lowest-delay one counts "
        f"(default: {CRISTIAN_DEFAULTS['samples']:g}, fleet {FLEET_DEFAULTS['samples']:g})",
    )
    cristian.add_argument(
        "--timeout",
        type=positive,
        metavar="SECONDS",
        help="give up on an answer after this "
        f"(default: {CRISTIAN_DEFAULTS['timeout']:g}, fleet {FLEET_DEFAULTS['timeout']:g})",
    )
    protocol_option(node)
    clock_options(node)
    nudge_option(node)
    chrony_option(node)
    key_options(
        node,
        sign="replies to polls",
        trust="polls and corrections (berkeley) or time answers (cristian)",
    )


def _add_timeserver(commands: Commands) -> None:
    """`clocksync timeserver`: a reference clock that answers time requests."""
    timeserver = commands.add_parser(
        "timeserver", help="answer Cristian time requests from this clock, and nothing else"
    )
    common_options(timeserver)
    timeserver.add_argument(
        "--name",
        type=participant_name,
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
    protocol_option(timeserver)
    offset_options(timeserver)
    chrony_option(timeserver)
    key_options(timeserver, sign="time answers")


def _add_ask(commands: Commands) -> None:
    """`clocksync ask`: one Cristian measurement, printed."""
    ask = commands.add_parser(
        "ask", help="measure this clock against the time server (Cristian) and print it"
    )
    common_options(ask, log_level="warning")
    ask.add_argument(
        "--name",
        type=participant_name,
        required=True,
        help="this client's name; answers come to it",
    )
    _exchange_options(ask)
    ask.add_argument(
        "--apply",
        action="store_true",
        help="correct this process's clock by the offset, then measure again",
    )
    protocol_option(ask)
    offset_options(ask, drift_too=False)
    key_options(ask, trust="time answers")


def _exchange_options(parser: argparse.ArgumentParser) -> None:
    """What `ask` and `now` share: how many exchanges, how long to wait, JSON or not."""
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=CRISTIAN_DEFAULTS["samples"],
        help="exchanges; the lowest-delay one counts (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=positive,
        default=1.0,
        metavar="SECONDS",
        help="give up on an answer (and on the broker) after this (default: %(default)g)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _add_now(commands: Commands) -> None:
    """`clocksync now`: the site's time, for scripts."""
    now = commands.add_parser(
        "now", help="print the site's time (asked of its time servers), with its error bound"
    )
    common_options(now, log_level="warning")
    now.add_argument(
        "--name",
        type=participant_name,
        default="now",
        help="this client's name; answers come to it (default: now)",
    )
    _exchange_options(now)
    protocol_option(now)
    key_options(now, trust="time answers")


def _add_monitor(commands: Commands) -> None:
    """`clocksync monitor`: the site live, as `chronyc sources` and `tracking` show a host."""
    monitor = commands.add_parser(
        "monitor", help="watch a site live: every participant, its offset, bound and state"
    )
    common_options(monitor, log_level="warning")
    monitor.add_argument(
        "--once", action="store_true", help="print one snapshot after --wait and exit"
    )
    monitor.add_argument(
        "--json", action="store_true", help="with --once: print it as one JSON document"
    )
    monitor.add_argument(
        "--wait",
        type=positive,
        default=2.0,
        metavar="SECONDS",
        help="with --once: watch this long first, for the retained messages and a round or "
        "two (default: %(default)g); also the time allowed to reach the broker",
    )
    protocol_option(monitor)


def _add_keygen(commands: Commands) -> None:
    """`clocksync keygen`: an Ed25519 key pair for signed time."""
    keygen = commands.add_parser(
        "keygen", help="write an Ed25519 key pair for signed time: PREFIX.key and PREFIX.pub"
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="PREFIX")


def _add_demo(commands: Commands) -> None:
    """`clocksync demo`: the reference scenarios on a private broker."""
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
    demo.add_argument("--max-rounds", type=positive_int, default=20)
    demo.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="kitchen: also draw every line's offset from the master over time "
        "(needs matplotlib: the plot extra, clocksync[plot])",
    )
    demo.add_argument(
        "--web",
        action="store_true",
        help="kitchen: the broker also serves the kitchen's web page (web/) on a WebSockets "
        "listener, whose address it prints; runs until Ctrl-C",
    )
    demo.add_argument(
        "--log-level",
        default="error",
        choices=["debug", "info", "warning", "error"],
        help="log level of the demo's participants (default: error)",
    )
