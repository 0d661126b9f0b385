"""`clocksync demo buddy`: the Manipal Buddy devices asking the bank's time server.

A student pays exam fees on the mobile app while registering for a course in a laptop's web
browser; both records must carry times that agree with the bank's clock.  The demo starts its
own Mosquitto and the bank's `clocksync timeserver` (its clock deliberately off the host's:
the bank's clock is the reference, not this host's), then runs `clocksync ask --apply` for
both devices at the same moment, the browser on MQTT 3.1.1.  Each device's error is judged
from the truth signals, not from what the devices say.
"""

import json
import subprocess
import sys
from dataclasses import dataclass

from clocksync.protocol.enums import MqttVersion
from clocksync.testing.localbroker import LocalMosquitto
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command
from clocksync.transport.url import BrokerUrl

SITE = "manipal-buddy"
BANK = ClockSpec("bank", 0.8, 0.0)


@dataclass(frozen=True)
class Device:
    name: str
    offset_s: float
    protocol: MqttVersion


DEVICES = (
    Device("mobile-app", -3.2, MqttVersion.V5),
    Device("web-browser", 1.7, MqttVersion.V311),
)


def _ask(device: Device, broker: BrokerUrl) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "clocksync", "ask", "--json", "--apply",
            "--name", device.name, "--offset", repr(device.offset_s),
            "--protocol", device.protocol, "--broker", str(broker), "--site", SITE,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def run_buddy(broker: LocalMosquitto, processes: list[subprocess.Popen[bytes]]) -> int:
    """Run the scenario on `broker`; processes it starts are added to `processes`."""
    observer = Observer(broker.url, SITE)
    try:
        command = participant_command(
            "timeserver", BANK, broker.url, SITE, ["--log-level", "error"]
        )
        processes.append(subprocess.Popen(command))
        if not observer.wait_for(lambda: BANK.name in observer.true_offsets(), 15):
            print("clocksync demo: the bank's time server did not come online", file=sys.stderr)
            return 1
        print(
            f"Manipal Buddy: broker {broker.url}, site {SITE}; the bank's clock is "
            f"{BANK.offset_s:+.3f} s off this host's"
        )
        asks = [(device, _ask(device, broker.url)) for device in DEVICES]
        reports = [(device, ask.communicate(timeout=30)[0], ask.returncode) for device, ask in asks]
        observer.pump(0.2)
        bank = observer.true_offsets()[BANK.name]
        print(
            f"{'device':12} {'MQTT':5} {'offset to bank':>16} {'bound':>12} {'true error':>11}"
            f"   after --apply: {'off the bank':>13} {'bound':>10}"
        )
        held = True
        for device, output, returncode in reports:
            if returncode != 0:
                print(f"{device.name}: no answer", file=sys.stderr)
                return 1
            report = json.loads(output)
            truth = bank - report["client_host_offset_s"]
            error = abs(report["offset_s"] - truth)
            applied = report["applied"]
            off_after = abs(applied["client_host_offset_s"] - bank)
            held &= error <= report["error_bound_s"] and off_after <= report["error_bound_s"]
            print(
                f"{device.name:12} {device.protocol:5} {report['offset_s']:+15.6f}s "
                f"{'± ' + _us(report['error_bound_s']):>12} {_us(error):>11}"
                f"   {_us(off_after):>28} {_us(report['error_bound_s']):>10}"
            )
        verdict = (
            "both devices agree with the bank within their bounds"
            if held
            else ("a bound did not hold")
        )
        print(f"{verdict}: the exam fee and the course registration carry the bank's time")
        return 0 if held else 1
    finally:
        observer.close()
