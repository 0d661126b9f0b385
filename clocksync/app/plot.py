"""The picture `clocksync demo --plot FILE.png` draws: every clock's offset from the master
over time, from the truth signal, on a scale that shows seconds and microseconds alike."""

from collections.abc import Mapping, Sequence
from pathlib import Path

Series = Sequence[tuple[float, float]]
"""(seconds since the start, offset from the master in seconds), in time order."""


def plot_offsets(series: Mapping[str, Series], path: Path, title: str) -> None:
    """Write a PNG of each clock's offset from the master to `path`.  matplotlib is an
    optional dependency (clocksync[plot]): imported here, so that only plotting needs it."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(9, 4.8), dpi=110)
    for name, points in sorted(series.items()):
        if points:
            times, offsets = zip(*points, strict=True)
            axes.plot(times, [offset * 1e3 for offset in offsets], marker=".", label=name)
    axes.set_yscale("symlog", linthresh=0.01)  # linear within ±10 µs, logarithmic beyond
    axes.axhspan(-1, 1, color="green", alpha=0.08, label="within 1 ms")
    axes.set_xlabel("seconds since the master started")
    axes.set_ylabel("offset from the master (ms)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
