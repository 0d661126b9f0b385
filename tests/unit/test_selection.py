"""The fault-tolerant average and the corrections."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.core.selection import corrections, fault_tolerant_average, marzullo, spread


def test_a_clock_an_hour_off_is_excluded_and_moves_nobody() -> None:
    offsets = {"lab": 0.0, "KMC": 0.8, "MIT": -1.2, "TAPMI": 0.3, "SOLS": 3600.0}
    selection = fault_tolerant_average(offsets)
    assert selection.excluded == {"SOLS"}
    assert selection.average_s == pytest.approx((0.0 + 0.8 - 1.2 + 0.3) / 4)


def test_agreeing_clocks_are_all_included() -> None:
    offsets = {"lab": 0.0, "KMC": 0.00002, "MIT": -0.00003, "TAPMI": 0.00001}
    selection = fault_tolerant_average(offsets)
    assert selection.excluded == frozenset()
    assert selection.window_s == 0.002


def test_the_window_never_shrinks_below_its_floor() -> None:
    offsets = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0015, "e": 0.0025}
    selection = fault_tolerant_average(offsets, min_window_s=0.002)
    assert selection.included == {"a", "b", "c", "d"}
    assert selection.excluded == {"e"}


def test_two_clocks_cannot_outvote_each_other() -> None:
    selection = fault_tolerant_average({"lab": 0.0, "KMC": 3600.0})
    assert selection.excluded == frozenset()
    assert selection.average_s == 1800.0


def test_no_offsets_is_an_error() -> None:
    with pytest.raises(ValueError, match="no offsets"):
        fault_tolerant_average({})


def test_corrections_bring_every_clock_to_the_average() -> None:
    offsets = {"lab": 0.0, "KMC": 2.0, "MIT": -1.0}
    fixes = corrections(offsets, 0.5)
    assert fixes == {"lab": 0.5, "KMC": -1.5, "MIT": 1.5}
    assert {name: offsets[name] + fixes[name] for name in offsets} == dict.fromkeys(offsets, 0.5)


def test_spread() -> None:
    assert spread({"a": -0.25, "b": 0.5, "c": 0.0}) == 0.75
    assert spread({}) == 0.0


offset_maps = st.dictionaries(
    st.text(alphabet="abcdefghij", min_size=1, max_size=4),
    st.floats(min_value=-1e4, max_value=1e4),
    min_size=1,
    max_size=30,
)


@given(offset_maps)
def test_the_average_rests_on_at_least_half_the_clocks(offsets: dict[str, float]) -> None:
    selection = fault_tolerant_average(offsets)
    assert 2 * len(selection.included) >= len(offsets)
    assert selection.included | selection.excluded == set(offsets)
    assert not selection.included & selection.excluded
    included = [offsets[name] for name in selection.included]
    assert min(included) - 1e-9 <= selection.average_s <= max(included) + 1e-9


@given(offset_maps, st.floats(min_value=1e6, max_value=1e9))
def test_one_wild_clock_is_excluded_and_cannot_drag_the_average_out_of_the_honest_span(
    offsets: dict[str, float], wild: float
) -> None:
    selection = fault_tolerant_average({**offsets, "wild!": wild})
    if len(offsets) >= 2:
        assert "wild!" in selection.excluded
        assert min(offsets.values()) - 1e-9 <= selection.average_s <= max(offsets.values()) + 1e-9


def test_marzullo_finds_what_the_majority_agrees_on() -> None:
    agreement = marzullo({"a": (0.9, 1.1), "b": (0.95, 1.2), "c": (5.0, 5.2)})
    assert agreement is not None
    assert agreement.truechimers == {"a", "b"}
    assert agreement.falsetickers == {"c"}
    assert 0.95 <= agreement.point <= 1.1


def test_marzullo_needs_a_majority() -> None:
    assert marzullo({"a": (0.0, 1.0), "b": (2.0, 3.0)}) is None
    assert marzullo({}) is None
    single = marzullo({"a": (0.0, 1.0)})
    assert single is not None
    assert single.truechimers == {"a"}


def test_touching_intervals_agree() -> None:
    agreement = marzullo({"a": (0.0, 1.0), "b": (1.0, 2.0), "c": (1.0, 1.5)})
    assert agreement is not None
    assert agreement.truechimers == {"a", "b", "c"}


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.tuples(st.floats(-10, 10), st.floats(0, 5)).map(lambda t: (t[0], t[0] + t[1])),
        min_size=1,
        max_size=7,
    )
)
def test_truechimers_share_a_point_and_outnumber_the_rest(
    intervals: dict[str, tuple[float, float]],
) -> None:
    agreement = marzullo(intervals)
    if agreement is None:
        return
    assert 2 * len(agreement.truechimers) > len(intervals)
    for name in agreement.truechimers:
        low, high = intervals[name]
        assert low <= agreement.point <= high
