"""What `pip install .` puts on the import path: clocksync alone, with the roles inside it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_only_the_clocksync_package(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the repository
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    for package in ("clocksync", "master", "nodes"):
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
    subprocess.run([*pip, "-w", str(tmp_path), str(source)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("clocksync-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {level for level in top_level if not level.endswith(".dist-info")} == {"clocksync"}
    for module in ("clocksync/master/berkeley.py", "clocksync/nodes/cristian.py"):
        assert module in names
    assert "clocksync/py.typed" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "clocksync = clocksync.app.cli:main" in archive.read(entry_points).decode()
