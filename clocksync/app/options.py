"""The command line's value types and option groups, shared by the commands."""

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from clocksync.app import driftfile
from clocksync.core.clock import MAX_DRIFT_PPM, Discipline, SoftwareClock
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.signing import KeyFileError, Keys
from clocksync.protocol.topics import check_name
from clocksync.transport.link import MAX_NUDGE_S, NUDGE_S
from clocksync.transport.url import BROKER_ENV, DEFAULT_BROKER, TLS_ENV, BrokerUrl, TlsFiles


def number_between(check: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and check(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return value

    return parse


finite = number_between(lambda _: True, "finite")
non_negative = number_between(lambda value: value >= 0, "zero or more")
positive = number_between(lambda value: value > 0, "positive")
nudge_lead = number_between(lambda value: 0 <= value <= MAX_NUDGE_S, f"from 0 to {MAX_NUDGE_S:g}")
drift = number_between(lambda value: abs(value) <= MAX_DRIFT_PPM, f"within ±{MAX_DRIFT_PPM:g} ppm")


def participant_name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def broker_url(text: str) -> BrokerUrl:
    try:
        return BrokerUrl.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def mqtt_version(text: str) -> MqttVersion:
    try:
        return MqttVersion(text)
    except ValueError:
        choices = ", ".join(MqttVersion)
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {choices})"
        ) from None


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number")
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return int(text)


def common_options(parser: argparse.ArgumentParser, log_level: str = "info") -> None:
    parser.add_argument(
        "--broker",
        type=broker_url,
        default=os.environ.get(BROKER_ENV, DEFAULT_BROKER),
        help=f"mqtt://, mqtts://, ws:// or wss://[user@]host[:port][/path] "
        f"(default: ${BROKER_ENV} or {DEFAULT_BROKER}); "
        "the password, if any, from $CLOCKSYNC_PASSWORD",
    )
    tls = parser.add_argument_group("TLS (mqtts:// and wss://)")
    tls.add_argument(
        "--tls-ca",
        type=Path,
        metavar="FILE",
        help=f"trust the broker's certificate if this CA signed it, instead of the system's "
        f"trust store (default: ${TLS_ENV['ca']})",
    )
    tls.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help=f"a client certificate, for brokers that want one (default: ${TLS_ENV['cert']})",
    )
    tls.add_argument(
        "--tls-key",
        type=Path,
        metavar="FILE",
        help=f"its private key (default: ${TLS_ENV['key']})",
    )
    parser.add_argument(
        "--site",
        type=participant_name,
        default="default",
        help="the site: one topic tree per site (default: default)",
    )
    parser.add_argument(
        "--log-level", default=log_level, choices=["debug", "info", "warning", "error"]
    )


def protocol_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--protocol",
        type=mqtt_version,
        metavar="{" + ",".join(MqttVersion) + "}",
        default=MqttVersion.V5,
        help="MQTT version to speak, for brokers with nothing newer than 3.1.1: then the reply "
        "topic and correlation data travel in the payload (default: 5)",
    )


def offset_options(parser: argparse.ArgumentParser, *, drift_too: bool = True) -> None:
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


def nudge_option(parser: argparse.ArgumentParser) -> None:
    """For the roles that send a Berkeley exchange's timed messages: polls and replies."""
    parser.add_argument(
        "--nudge",
        type=nudge_lead,
        default=NUDGE_S,
        metavar="SECONDS",
        help="wake the broker with a PINGREQ this long before each poll (a master) or reply "
        "to one (a polled node), so that an exchange's first hop is not slower than its "
        "second; 0 turns it off (default: %(default)g)",
    )


def chrony_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chrony-sock",
        type=Path,
        metavar="PATH",
        help="feed this clock, once synchronized, to chronyd as a reference clock: "
        "chrony.conf's `refclock SOCK PATH` (then the host's system clock follows the site)",
    )


def key_options(
    parser: argparse.ArgumentParser, *, sign: str | None = None, trust: str | None = None
) -> None:
    """--signing-key (when the role seals what it sends) and --trust-key (when it requires
    seals), each explained for the role."""
    group = parser.add_argument_group("signed time")
    if sign is not None:
        group.add_argument(
            "--signing-key", type=Path, metavar="FILE", help=f"seal {sign} with this private key"
        )
    if trust is not None:
        group.add_argument(
            "--trust-key",
            type=Path,
            action="append",
            metavar="FILE",
            help=f"accept {trust} only under a seal of this public key (repeat for more keys)",
        )


def keys_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Keys:
    try:
        return Keys.load(getattr(args, "signing_key", None), getattr(args, "trust_key", None))
    except KeyFileError as error:
        parser.error(str(error))


def clock_options(parser: argparse.ArgumentParser) -> None:
    offset_options(parser)
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
    group.add_argument(
        "--drift-file",
        type=Path,
        metavar="FILE",
        help="start with the frequency correction kept in FILE, and keep it there on "
        "stopping (as chrony's driftfile)",
    )


def clock_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SoftwareClock:
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
    frequency_ppm = 0.0 if args.drift_file is None else driftfile.load(args.drift_file)
    return SoftwareClock(
        offset_s=args.offset,
        drift_ppm=args.drift_ppm,
        frequency_ppm=frequency_ppm,
        discipline=discipline,
    )


def tls_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TlsFiles | None:
    """The TLS files, checked now rather than at the first connect; None for a broker
    without TLS."""
    if not args.broker.scheme.tls:
        return None
    files = TlsFiles.from_environment(args.tls_ca, args.tls_cert, args.tls_key)
    try:
        files.context()
    except ValueError as error:
        parser.error(str(error))
    return files
