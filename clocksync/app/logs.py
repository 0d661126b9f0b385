"""Keep a flood of bad input from becoming a flood of log lines, without hiding what it is.

Every dropped message is logged as a warning, so a hostile or broken publisher sending
thousands a second would otherwise bury everything else.  Each kind of warning (its logger
and format string) is let through `burst` times per `window_s`; the first one of a kind let
through after that says how many of the kind were held back and what the latest of them
said, so a real cause among a flood of one kind still shows within a window.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

LATEST_CHARS = 200


@dataclass
class _Kind:
    started: float
    passed: int = 0
    held: int = 0
    latest: str = ""


class WarningThrottle(logging.Filter):
    """A logging filter for warnings and above; less severe records always pass."""

    def __init__(
        self,
        burst: int = 10,
        window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._burst = burst
        self._window_s = window_s
        self._monotonic = monotonic
        self._kinds: dict[tuple[str, str], _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self._monotonic()
        kind = self._kinds.setdefault((record.name, str(record.msg)), _Kind(now))
        if now - kind.started >= self._window_s:
            if kind.held:
                record.msg = (
                    f"{record.msg} ({kind.held} more like this in the last "
                    f"{self._window_s:g} s, the latest: {kind.latest[:LATEST_CHARS]})"
                )
            kind.started, kind.passed, kind.held = now, 0, 0
        if kind.passed >= self._burst:
            kind.held += 1
            kind.latest = record.getMessage()
            return False
        kind.passed += 1
        return True
