"""The drift file: a clock's frequency correction kept across restarts (chrony's driftfile).

One line, "FREQUENCY_PPM ERROR_PPM", as chrony writes it.  A participant reads it at start,
so that a restarted clock runs at the rate its history had found instead of free-running
until it has a new history, and writes it when it stops.  A missing or unreadable file
only means starting from zero.
"""

import logging
import math
import os
from pathlib import Path

from clocksync.roles.participant import Participant

log = logging.getLogger(__name__)


def load(path: Path) -> float:
    """The frequency correction in `path`, in ppm; 0 when there is none to read."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return 0.0
    except (OSError, UnicodeDecodeError) as error:
        log.warning("starting without a frequency correction: %s: %s", path, error)
        return 0.0
    try:
        frequency = float(text.split()[0])
    except (IndexError, ValueError):
        frequency = math.nan
    if not math.isfinite(frequency):
        log.warning("starting without a frequency correction: %s holds %r", path, text[:40])
        return 0.0
    return frequency


def save(path: Path, participant: Participant) -> None:
    """Write the participant's frequency correction, if its history has estimated one; by a
    rename, so that a reader never sees half a file."""
    error_ppm = participant.tracking.frequency_error_ppm
    if error_ppm is None:
        return
    partial = path.with_name(path.name + ".tmp")
    try:
        frequency_ppm = participant.clock.frequency_ppm
        partial.write_text(f"{frequency_ppm:.6f} {error_ppm:.6f}\n")
        os.replace(partial, path)
    except OSError as error:
        log.warning("could not keep the frequency correction in %s: %s", path, error)
