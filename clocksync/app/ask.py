"""`clocksync ask` (and `now`): one Cristian measurement against the site's time server,
like `chronyd -q` without touching the system clock.

It makes `samples` exchanges, keeps the lowest-delay one and prints the server's time, the
round trip, its own clock, the corrected time, the offset and its error bound.  `--apply`
corrects its own (software) clock by that offset and measures again, to show where the
correction left it.  The process's clock starts `--offset` seconds off its host's clock, so
the host clock is the truth: `client_host_offset_s` in the JSON lets anyone check.
"""

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.core.sample import Sample
from clocksync.driver.client import CristianClient, run_bursts
from clocksync.nodes.asker import Burst
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.signing import TrustedKeys
from clocksync.protocol.timefmt import format_ns
from clocksync.transport.url import BrokerUrl, TlsFiles


@dataclass(frozen=True)
class AskOptions:
    broker: BrokerUrl
    site: str
    name: str
    samples: int
    timeout_s: float
    offset_s: float
    apply: bool
    as_json: bool
    protocol: MqttVersion
    trusted: TrustedKeys | None = None
    tls: TlsFiles | None = None
    now: bool = False
    """`clocksync now`: print only the site's time at the moment of printing."""


def _measure(client: CristianClient, options: AskOptions) -> tuple[Burst, Sample] | None:
    """`samples` exchanges, each given up after the timeout: the burst and its best sample."""
    run_bursts([client], options.samples, options.timeout_s * (options.samples + 1))
    burst = client.burst
    assert burst is not None
    best = burst.best()
    return None if best is None else (burst, best)


def _report(burst: Burst, best: Sample) -> dict[str, object]:
    """The best sample as the client reports it: the server's time is estimated at the
    instant the answer arrived (t4, on the client's clock)."""
    client_time = best.exchange.t4
    server_time = client_time + round(best.offset_s * NS_PER_S)
    return {
        "server": best.peer,
        "server_time": format_ns(server_time),
        "client_time": format_ns(client_time),
        "offset_s": best.offset_s,
        "error_bound_s": best.error_bound_s,
        "rtt_s": best.rtt_s,
        "delay_s": best.delay_s,
        "samples": len(burst.samples),
        "requested": burst.sent,
    }


def run_ask(options: AskOptions, out: Callable[[str], None] = print) -> int:
    """Measure (and with `apply`, correct and measure again); 0 on success, 1 with no
    answer or no broker within the timeout."""
    client = CristianClient(
        options.broker,
        options.site,
        options.name,
        SoftwareClock(offset_s=options.offset_s),
        timeout_s=options.timeout_s,
        protocol=options.protocol,
        trusted=options.trusted,
        tls=options.tls,
    )
    try:
        if not client.link.wait_until_ready(options.timeout_s):
            refusal = client.link.refusal
            why = refusal.reason if refusal else f"no answer from the broker {options.broker}"
            print(f"{_command(options)}: {why}", file=sys.stderr)
            return 1
        found = _measure(client, options)
        if found is None:
            print(
                f"{_command(options)}: no answer from a time server on "
                f"{client.inquirer.asker.topics.cristian_request} "
                f"within {options.timeout_s:g} s per request",
                file=sys.stderr,
            )
            return 1
        burst, best = found
        if options.now:
            _print_now(_now(client.clock, best, options.site), options.as_json, out)
            return 0
        report = _report(burst, best)
        offset_ns, _ = client.clock.host_offset_ns()
        report["client_host_offset_s"] = offset_ns / NS_PER_S
        report["corrected_time"] = report["server_time"]
        if options.apply:
            report["applied"] = _apply(client, best, options)
        _print(report, options.as_json, out)
    finally:
        client.close()
    return 0


def _apply(client: CristianClient, best: Sample, options: AskOptions) -> dict[str, object] | None:
    """Correct the clock by the best offset, let any slew finish, and measure again."""
    clock = client.clock
    how, _ = clock.correct_measured(round(best.offset_s * NS_PER_S), best.adjusted_ns)
    slew_end = clock.slew_end_mono()
    if slew_end is not None:
        time.sleep(max(0, slew_end - clock.monotonic_ns()) / NS_PER_S)
    found = _measure(client, options)
    if found is None:
        return None
    after = found[1]
    offset_ns, _ = clock.host_offset_ns()
    return {
        "how": how.value,
        "offset_s": after.offset_s,
        "error_bound_s": after.error_bound_s,
        "client_host_offset_s": offset_ns / NS_PER_S,
    }


def _command(options: AskOptions) -> str:
    return "clocksync now" if options.now else "clocksync ask"


def _now(clock: SoftwareClock, best: Sample, site: str) -> dict[str, object]:
    """The site's time now: this host's clock plus the best offset measured, the bound
    grown since the answer at the rate this clock may be off."""
    mono = clock.monotonic_ns()
    host_now = time.time_ns()
    offset_s = best.offset_s + (clock.reading_at(mono) - host_now) / NS_PER_S
    elapsed_s = max(0, mono - best.arrived_mono) / NS_PER_S
    bound_s = best.error_bound_s + clock.rate_error_ppm(may_slew=False) * 1e-6 * elapsed_s
    site_ns = host_now + round(offset_s * NS_PER_S)
    return {
        "site": site,
        "site_time": format_ns(site_ns),
        "site_time_ns": site_ns,
        "error_bound_s": bound_s,
        "offset_from_host_s": offset_s,
        "server": best.peer,
        "rtt_s": best.rtt_s,
    }


def _print_now(report: dict[str, object], as_json: bool, out: Callable[[str], None]) -> None:
    if as_json:
        out(json.dumps(report))
        return
    offset = report["offset_from_host_s"]
    assert isinstance(offset, float)
    out(
        f"{report['site_time']} ± {_us(report['error_bound_s'])}  (site {report['site']}, "
        f"from {report['server']}; this host's clock is {-offset:+.6f} s off it)"
    )


def _print(report: dict[str, object], as_json: bool, out: Callable[[str], None]) -> None:
    if as_json:
        out(json.dumps(report))
        return
    out(f"server time     {report['server_time']}")
    out(
        f"round trip      {_us(report['rtt_s'])} (delay {_us(report['delay_s'])}, "
        f"best of {report['samples']} answers to {report['requested']} requests)"
    )
    out(f"client clock    {report['client_time']}")
    out(f"corrected time  {report['corrected_time']}")
    out(f"offset          {report['offset_s']:+.9f} s ± {_us(report['error_bound_s'])}")
    applied = report.get("applied", False)
    if applied is None:
        out("after applying  no answer to the second measurement")
    elif isinstance(applied, dict):
        out(
            f"after applying  {applied['how']}, now {applied['offset_s']:+.9f} s "
            f"± {_us(applied['error_bound_s'])}"
        )


def _us(seconds: object) -> str:
    assert isinstance(seconds, float)
    return f"{seconds * 1e6:.1f} µs"
