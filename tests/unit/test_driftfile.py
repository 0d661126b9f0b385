"""The drift file: read at start, written on stopping, never fatal."""

from pathlib import Path

import pytest

from clocksync.app import driftfile
from clocksync.core.clock import NS_PER_S
from clocksync.nodes.berkeley import BerkeleyNode
from clocksync.roles.participant import Measured
from tests.unit.fakes import FakeTime


def test_a_missing_file_means_no_correction(tmp_path: Path) -> None:
    assert driftfile.load(tmp_path / "absent") == 0.0


@pytest.mark.parametrize("text", ["", "nan 0.1\n", "fast\n", "inf\n", "\xff"])
def test_an_unreadable_file_is_a_warning_not_a_failure(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "drift"
    path.write_text(text, encoding="latin-1")
    assert driftfile.load(path) == 0.0
    assert "starting without a frequency correction" in caplog.text


def test_what_a_tracking_clock_saves_it_reads_back(tmp_path: Path) -> None:
    time = FakeTime()
    node = BerkeleyNode(name="KMC", site="kitchen", clock=time.clock(), status_interval_s=1.0)
    path = tmp_path / "drift"
    driftfile.save(path, node)
    assert not path.exists(), "nothing estimated yet: nothing to keep"
    for second in range(1, 6):  # the clock needs 30 µs more every second: 30 ppm slow
        adjusted = node.clock.adjusted_ns()
        correction = (second * 30_000 - adjusted) / NS_PER_S
        node.apply_correction(Measured(correction, adjusted, time.mono))
        time.advance(NS_PER_S)
    assert node.clock.frequency_ppm == pytest.approx(30.0, abs=1.0)
    driftfile.save(path, node)
    assert driftfile.load(path) == pytest.approx(node.clock.frequency_ppm, abs=1e-6)
    assert len(path.read_text().split()) == 2
    assert not path.with_name("drift.tmp").exists()
