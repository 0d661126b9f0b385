"""Keep a flood of bad input from becoming a flood of log lines.

Every dropped message is logged as a warning, so a hostile or broken publisher sending
thousands a second would otherwise bury everything else.  Each kind of warning (its logger
and format string) is let through `burst` times per `window_s`; the first one let through
after a quiet spell says how many were held back.
"""

import logging
import time
from collections.abc import Callable


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
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self._monotonic()
        started, passed, held = self._seen.get(key, (now, 0, 0))
        if now - started >= self._window_s:
            if held:
                record.msg = f"{record.msg} ({held} more like this were not logged)"
            started, passed, held = now, 0, 0
        if passed >= self._burst:
            self._seen[key] = (started, passed, held + 1)
            return False
        self._seen[key] = (started, passed + 1, held)
        return True
