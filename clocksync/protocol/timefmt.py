"""RFC 3339 timestamps with nanosecond fractions.

Every time on the wire is an RFC 3339 UTC string so that `mosquitto_sub` shows something a
person can read.  Python's datetime stops at microseconds, which would quantise every
measurement by up to 1 µs, so the fraction is carried as nine digits and parsed by hand;
dateutil parses the rest, including non-UTC offsets sent by other implementations.
"""

import re
from datetime import UTC, datetime
from functools import lru_cache

from dateutil.parser import isoparse

_NS_PER_S = 1_000_000_000
_RFC3339 = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})"
)


@lru_cache(maxsize=8)
def _whole_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_ns(epoch_ns: int) -> str:
    """Render nanoseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.fffffffffZ`.

    Send timestamps are formatted after they are read, so this is kept cheap: the date and
    time of day are cached per second.
    """
    seconds, fraction = divmod(epoch_ns, _NS_PER_S)
    return f"{_whole_seconds(seconds)}.{fraction:09d}Z"


def parse_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp into nanoseconds since the Unix epoch.

    Raises ValueError for anything that is not a complete RFC 3339 date-time with a zone.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:64]!r}")
    fraction = (match["fraction"] or "").ljust(9, "0")
    return _whole_seconds_of(match["base"], match["zone"]) * _NS_PER_S + int(fraction)


@lru_cache(maxsize=64)
def _whole_seconds_of(base: str, zone: str) -> int:
    """Seconds since the Unix epoch of a date, time of day and zone; cached, since a time
    server reads many timestamps within the same second."""
    zone = "+00:00" if zone in ("Z", "z") else zone
    return int(isoparse(base.upper() + zone).timestamp())
