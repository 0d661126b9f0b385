"""RFC 3339 timestamps with nanoseconds."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.protocol.timefmt import format_ns, parse_ns


def test_formats_utc_with_nine_fraction_digits() -> None:
    assert format_ns(1_795_863_247_311_000_001) == "2026-11-28T10:54:07.311000001Z"
    assert format_ns(0) == "1970-01-01T00:00:00.000000000Z"


@given(st.integers(min_value=0, max_value=253_402_300_799 * 10**9))
def test_round_trip_is_exact(moment: int) -> None:
    assert parse_ns(format_ns(moment)) == moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T10:54:07Z", 1_795_863_247_000_000_000),
        ("2026-11-28T10:54:07.5Z", 1_795_863_247_500_000_000),
        ("2026-11-28t10:54:07.000001z", 1_795_863_247_000_001_000),
        ("2026-11-28T16:24:07.25+05:30", 1_795_863_247_250_000_000),
        ("2026-11-28T05:54:07-05:00", 1_795_863_247_000_000_000),
    ],
)
def test_parses_fractions_and_zones(text: str, expected: int) -> None:
    assert parse_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-28",
        "2026-11-28T10:54:07",
        "2026-11-28T10:54:07.1234567890Z",
        "2026-11-28 10:54:07Z",
        "2026-13-28T10:54:07Z",
        "2026-11-28T25:54:07Z",
        "yesterday",
    ],
)
def test_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_ns(text)
