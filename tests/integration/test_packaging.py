"""What `pip install .` puts on the import path: clocksync alone, with the roles inside it."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_only_the_clocksync_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("clocksync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {level for level in top_level if not level.endswith(".dist-info")} == {"clocksync"}
    for module in (
        "clocksync/master/berkeley.py",
        "clocksync/nodes/cristian.py",
        "clocksync/py.typed",
    ):
        assert module in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert (
        "clocksync = clocksync.app.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
