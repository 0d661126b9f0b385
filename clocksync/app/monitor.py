"""`clocksync monitor`: a site live in the terminal, or one snapshot of it (`--once`, and as
one JSON document with `--json`), from what the site publishes (clocksync.app.siteview).

It only subscribes, so it needs no more from the broker's ACL than read access to the
statuses, the round summaries and the leader record.
"""

import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from clocksync.app.siteview import SiteView
from clocksync.driver.runner import StopFlag
from clocksync.protocol.enums import MqttVersion
from clocksync.protocol.envelope import Inbound
from clocksync.protocol.topics import Topics
from clocksync.transport.link import MqttLink
from clocksync.transport.url import BrokerUrl, TlsFiles

REFRESH_S = 0.5
TEXT_COLUMNS = {"name", "role", "state", "sync", "leader", "excluded"}


@dataclass(frozen=True)
class MonitorOptions:
    broker: BrokerUrl
    site: str
    once: bool
    as_json: bool
    wait_s: float
    protocol: MqttVersion = MqttVersion.V5
    tls: TlsFiles | None = None


def run_monitor(options: MonitorOptions, out: Callable[[str], None] = print) -> int:
    """Watch until SIGINT or SIGTERM, or with `once` print after `wait_s`; 1 if the broker
    cannot be reached within `wait_s`."""
    view = SiteView(Topics(options.site))
    link = MqttLink(
        options.broker,
        f"clocksync-monitor-{os.getpid()}",
        subscriptions=view.subscriptions,
        protocol=options.protocol,
        tls=options.tls,
    )
    try:
        if not link.wait_until_ready(options.wait_s):
            print(f"monitor: no broker at {options.broker}: {link.refusal}", file=sys.stderr)
            return 1
        if options.once:
            _watch(link, view, options.wait_s)
            snapshot = view.snapshot(time.monotonic_ns())
            out(json.dumps(snapshot, indent=2) if options.as_json else as_text(snapshot))
            return 0
        stop = StopFlag().install()
        with Live(render(view.snapshot(time.monotonic_ns())), auto_refresh=False) as live:
            while not stop.requested:
                _watch(link, view, REFRESH_S)
                live.update(render(view.snapshot(time.monotonic_ns())), refresh=True)
        return 0
    finally:
        link.close()


def _watch(link: MqttLink, view: SiteView, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        for event in link.poll(min(remaining, 0.05)):
            if isinstance(event, Inbound):
                view.handle(event)


def as_text(snapshot: dict[str, object]) -> str:
    console = Console(width=180, file=io.StringIO(), color_system=None)
    console.print(render(snapshot))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines())


def duration(value: object, sign: str = "+") -> str:
    """Seconds in the unit that suits them (µs, ms or s); '-' for none."""
    if not isinstance(value, float):
        return "-"
    for scale, unit in ((1e6, "µs"), (1e3, "ms")):
        if abs(value) * scale < 1000:
            return f"{value * scale:{sign}.1f} {unit}"
    return f"{value:{sign}.3f} s"


def render(snapshot: dict[str, object]) -> Group:
    """The snapshot as a heading and one row per participant (times in µs)."""
    rate = snapshot["rounds_per_minute"]
    spread = snapshot["spread_s"]
    heading = Text.assemble(
        ("site ", "dim"),
        (str(snapshot["site"]), "bold"),
        ("  leader ", "dim"),
        (f"{snapshot['leader'] or '-'} (term {snapshot['term'] or '-'})", "bold"),
        ("  round ", "dim"),
        str(snapshot["round"] or "-"),
        ("  spread ", "dim"),
        duration(spread, ""),
        ("  rate ", "dim"),
        f"{rate:.1f}/min" if isinstance(rate, float) else "-",
    )
    table = Table(box=None, header_style="bold")
    for column in (
        "name", "role", "state", "sync", "leader", "offset", "delay", "correction",
        "excluded", "last corr", "bound", "freq ppm", "true offset", "seen",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column in TEXT_COLUMNS else "right")
    rows = snapshot["participants"]
    assert isinstance(rows, list)
    for row in rows:
        excluded = row["excluded"]
        frequency = row["frequency_ppm"]
        table.add_row(
            row["name"],
            row["role"],
            Text(row["state"], style="green" if row["state"] == "online" else "red"),
            row["sync"],
            row["leader"] or "-",
            duration(row["offset_s"]),
            duration(row["delay_s"], ""),
            duration(row["correction_s"]),
            "-" if excluded is None else Text("yes", style="red") if excluded else "no",
            duration(row["last_correction_s"]),
            "-" if row["error_bound_s"] is None else "±" + duration(row["error_bound_s"], ""),
            "-" if not isinstance(frequency, float) else f"{frequency:+.3f}",
            duration(row["true_offset_from_leader_s"]),
            f"{row['last_seen_s']:.1f} s",
        )
    return Group(heading, table)
