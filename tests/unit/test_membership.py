"""Whom a round polls: the nodes that answer, and a bounded few of the silent ones."""

from itertools import pairwise

from clocksync.master.membership import (
    LIVE_ROUNDS,
    MAX_GAP,
    PROBES_PER_ROUND,
    Membership,
)


def run(members: Membership, number: int, answering: set[str]) -> tuple[str, ...]:
    """Plan round `number`, have `answering` answer (if polled); return the missing."""
    polling = members.plan(number)
    polled = set(polling.live) | set(polling.probes)
    return members.close(number, polling, answering & polled).missing


def test_a_new_node_is_probed_then_polled_fully_once_it_answers() -> None:
    members = Membership()
    members.announce("KMC", serving=True)
    first = members.plan(1)
    assert (first.live, first.probes) == ((), ("KMC",))
    members.close(1, first, {"KMC"})
    assert members.plan(2).live == ("KMC",)


def test_a_live_node_that_stops_answering_is_missing_then_silent() -> None:
    members = Membership()
    members.announce("KMC", serving=True)
    run(members, 1, {"KMC"})
    for number in range(2, 2 + LIVE_ROUNDS):
        assert run(members, number, set()) == ("KMC",)
    later = members.plan(2 + LIVE_ROUNDS)
    assert "KMC" not in later.live


def test_ghosts_are_probed_a_bounded_few_a_round_and_ever_more_rarely() -> None:
    members = Membership()
    members.announce("KMC", serving=True)
    run(members, 1, {"KMC"})
    for index in range(10_000):
        members.announce(f"ghost-{index:05d}", serving=True)
    probed: dict[str, list[int]] = {}
    for number in range(2, 400):
        polling = members.plan(number)
        assert polling.live == ("KMC",), "the real line is polled every round"
        assert len(polling.probes) <= PROBES_PER_ROUND
        for name in polling.probes:
            probed.setdefault(name, []).append(number)
        members.close(number, polling, {"KMC"})
    first = probed["ghost-00000"]
    gaps = [b - a for a, b in pairwise(first)]
    assert gaps == sorted(gaps), "ever more rarely"
    assert sum(len(rounds) for rounds in probed.values()) <= PROBES_PER_ROUND * 398


def test_a_fleet_coming_up_at_once_joins_within_a_few_rounds() -> None:
    members = Membership()
    names = {f"line-{index:04d}" for index in range(1000)}
    for name in names:
        members.announce(name, serving=True)
    for number in range(1, 7):
        run(members, number, names)
    assert set(members.plan(7).live) == names


def test_a_lone_silent_name_is_probed_at_most_every_max_gap_rounds() -> None:
    members = Membership()
    members.announce("ghost", serving=True)
    probed = []
    for number in range(1, 400):
        polling = members.plan(number)
        if polling.probes:
            probed.append(number)
        members.close(number, polling, set())
    gaps = [b - a for a, b in pairwise(probed)]
    assert gaps[:3] == [2, 4, 8]
    assert max(gaps) == MAX_GAP
