import logging
import socket
import struct
from pathlib import Path

import pytest

from clocksync.core.clock import NS_PER_S, SoftwareClock
from clocksync.driver.chrony import SOCK_MAGIC, ChronyFeed, sock_sample


def test_a_sample_has_chronys_layout() -> None:
    sample = sock_sample(1_800_000_000 * NS_PER_S + 123_456_789, -250_000_000)
    assert len(sample) == 40, "struct sock_sample on a 64-bit host"
    seconds, micros, offset, pulse, leap, _, magic = struct.unpack("@qqdiiii", sample)
    assert (seconds, micros, offset) == (1_800_000_000, 123_456, -0.25)
    assert (pulse, leap, magic) == (0, 0, SOCK_MAGIC)


class FakeTime:
    def __init__(self) -> None:
        self.mono = 10 * NS_PER_S
        self.wall = 1_800_000_000 * NS_PER_S

    def monotonic_ns(self) -> int:
        return self.mono

    def wall_ns(self) -> int:
        return self.wall


@pytest.fixture
def chronyd_socket(tmp_path: Path) -> socket.socket:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listening.bind(str(tmp_path / "refclock.sock"))
    listening.setblocking(False)
    return listening


def test_samples_go_once_a_second_and_only_once_synchronized(
    tmp_path: Path, chronyd_socket: socket.socket
) -> None:
    fake = FakeTime()
    clock = SoftwareClock(offset_s=0.3, monotonic_ns=fake.monotonic_ns, wall_ns=fake.wall_ns)
    synchronized = [False]
    feed = ChronyFeed(tmp_path / "refclock.sock", clock, lambda: synchronized[0])
    feed.maybe_send(fake.mono)
    assert feed.sent == 0, "nothing before the first correction"
    synchronized[0] = True
    for step_ms in (0, 400, 400, 400):  # at 0, 0.4, 0.8 and 1.2 s
        fake.mono += step_ms * 1_000_000
        fake.wall += step_ms * 1_000_000
        feed.maybe_send(fake.mono)
    assert feed.sent == 2
    _, _, offset, *_ = struct.unpack("@qqdiiii", chronyd_socket.recv(64))
    assert offset == pytest.approx(0.3)
    chronyd_socket.close()
    feed.close()


def test_a_missing_chronyd_is_logged_once_and_the_feed_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTime()
    clock = SoftwareClock(monotonic_ns=fake.monotonic_ns, wall_ns=fake.wall_ns)
    feed = ChronyFeed(tmp_path / "absent.sock", clock, lambda: True)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            feed.maybe_send(fake.mono)
            fake.mono += NS_PER_S
    assert feed.sent == 0
    assert len(caplog.records) == 1
    feed.close()


def test_reading_now_from_another_thread_never_mixes_segments() -> None:
    fake = FakeTime()
    clock = SoftwareClock(monotonic_ns=fake.monotonic_ns, wall_ns=fake.wall_ns)
    before = clock.reading_now()
    clock.correct(NS_PER_S)  # a step: a new segment from now
    assert clock.reading_now() == before + NS_PER_S
    fake.mono += NS_PER_S
    assert clock.reading_now() == clock.now_ns()
