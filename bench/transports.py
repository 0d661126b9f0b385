"""Cristian's accuracy on every transport, and what signing costs: the bank's time server
and one client, both on the transport named, through one Mosquitto with a listener for each.

    .venv/bin/python bench/transports.py [--exchanges 1000]

For each transport (and for signed answers over plain MQTT): `--exchanges` exchanges in
bursts of 8; |offset - truth| from the truth signals (the server's status, read over plain
MQTT); the delay; the error bound and how often it held; how many answers came with the
kernel's receive timestamp.  Then the time server's CPU per answer, unsigned and signed,
under a flood of requests from mosquitto_pub.
"""

import argparse
import logging
import subprocess
import tempfile
from pathlib import Path

from cristian import throughput

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.driver.client import CristianClient, run_bursts
from clocksync.protocol.signing import Signer, TrustedKeys
from clocksync.sim.scenarios import percentile
from clocksync.testing.localbroker import LocalMosquitto, every_transport
from clocksync.testing.observer import Observer
from clocksync.testing.processes import ClockSpec, participant_command, stop_processes
from clocksync.transport.url import BrokerUrl, Scheme, TlsFiles

REPO = Path(__file__).resolve().parent.parent
SITE = "bench"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def measure(
    broker: LocalMosquitto,
    scheme: Scheme,
    secrets: Path,
    exchanges: int,
    key: Path | None = None,
) -> str:
    """One row of the table: a time server and a client over `scheme`."""
    url = broker.url_for(scheme)
    tls = TlsFiles(ca=secrets / "certs" / "ca.crt")
    options = ["--status-interval", "0.2", "--log-level", "error"]
    if scheme.tls:
        options += ["--tls-ca", str(tls.ca)]
    if key is not None:
        options += ["--signing-key", str(key)]
    server = subprocess.Popen(
        participant_command("timeserver", ClockSpec("bank", 0.8), url, SITE, options)
    )
    observer = Observer(broker.url_for(Scheme.MQTT), SITE)
    trusted = None if key is None else TrustedKeys.load([key.with_suffix(".pub")])
    client = CristianClient(url, SITE, "phone", SoftwareClock(offset_s=-2.5), tls=tls,
                            trusted=trusted)  # fmt: skip
    try:
        assert observer.wait_for(lambda: "bank" in observer.true_offsets(), 15)
        assert client.link.wait_until_ready(10), client.link.refusal
        samples = []
        for _ in range(exchanges // 8):
            run_bursts([client], 8, timeout_s=30)
            assert client.burst is not None
            samples += client.burst.samples
        observer.pump(0.5)
        server_truth = observer.statuses["bank"].host_offset_s
        assert server_truth is not None
        truth = server_truth - client.clock.host_offset_ns()[0] / NS_PER_S
        errors = [abs(sample.offset_s - truth) for sample in samples]
        held = sum(e <= s.error_bound_s for e, s in zip(errors, samples, strict=True))
        counters = client.link.counters
        stamped = counters.kernel_stamped / max(1, counters.received)
        name = f"{scheme}://" + (", signed" if key is not None else "")
        return (
            f"| {name} | {us(percentile(errors, 0.5))} | {us(percentile(errors, 0.99))} "
            f"| {us(percentile([s.delay_s for s in samples], 0.5))} "
            f"| {us(percentile([s.error_bound_s for s in samples], 0.5))} "
            f"| {held / len(samples):.1%} | {stamped:.0%} |"
        )
    finally:
        client.close()
        observer.close()
        stop_processes([server])


def cpu_per_answer(broker: LocalMosquitto, key: Path | None) -> None:
    options = ["--log-level", "error"]
    if key is not None:
        options += ["--signing-key", str(key)]
    url = broker.url_for(Scheme.MQTT)
    server = subprocess.Popen(
        participant_command("timeserver", ClockSpec("bank"), url, SITE, options)
    )
    try:
        observer = Observer(url, SITE)
        assert observer.wait_for(lambda: "bank" in observer.true_offsets(), 15)
        observer.close()
        print("signed" if key else "unsigned", end=": ")
        throughput(BrokerUrl("127.0.0.1", url.port), server.pid, 50, 200)
    finally:
        stop_processes([server])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="clocksync-bench-") as folder:
        secrets = Path(folder)
        secrets.chmod(0o755)  # Mosquitto reads its files as the mosquitto user
        subprocess.run([str(REPO / "broker" / "make-dev-secrets"), folder], check=True)
        signer = Signer.generate()
        key, _ = signer.write(secrets / "bank")
        with LocalMosquitto(config=every_transport(secrets / "certs")) as broker:
            print(
                "| transport | \\|offset − truth\\| p50 | p99 | delay p50 | bound p50 "
                "| within bound | kernel timestamps |"
            )
            print("|---|---|---|---|---|---|---|")
            for scheme in Scheme:
                print(measure(broker, scheme, secrets, args.exchanges))
            print(measure(broker, Scheme.MQTT, secrets, args.exchanges, key))
            for signing in (None, key):
                cpu_per_answer(broker, signing)


if __name__ == "__main__":
    main()
