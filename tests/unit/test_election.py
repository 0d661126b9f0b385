"""The election, without I/O: who leads, when a standby takes over, and what a term is."""

from clocksync.master.election import LISTEN_ROUNDS, SILENCE_ROUNDS, Election, Record

ROUND = 1_000_000_000


def election(name: str = "lab", priority: int = 0, now: int = 0) -> Election:
    return Election(name, priority, incarnation=1_000, interval_ns=ROUND, now=now)


def test_a_master_listens_before_it_leads() -> None:
    alone = election()
    assert alone.leader(ROUND) is None
    assert alone.leader(LISTEN_ROUNDS * ROUND) == "lab"


def test_the_highest_priority_leads_and_the_first_name_breaks_a_tie() -> None:
    lab = election("lab", priority=1)
    lab.candidate("annex", 1)
    lab.candidate("zeta", 5)
    now = LISTEN_ROUNDS * ROUND
    assert lab.leader(now) == "zeta"
    lab.candidate("zeta", None)  # its Last Will
    assert lab.leader(now) == "annex"


def test_a_live_leader_keeps_the_lead_against_a_higher_priority() -> None:
    """No take-over when a master returns: the site does not split."""
    returning = election("lab", priority=9)
    returning.candidate("annex", 0)
    returning.leader_record(Record("annex", 5_000), 0)
    now = LISTEN_ROUNDS * ROUND
    returning.heard("annex", 5_000, now)
    assert returning.leader(now) == "annex"


def test_a_silent_leader_is_replaced_within_three_rounds() -> None:
    standby = election("lab")
    standby.candidate("annex", 9)
    standby.leader_record(Record("annex", 5_000), 0)
    standby.heard("annex", 5_000, ROUND)
    assert standby.leader(2 * ROUND) == "annex"
    assert standby.leader(ROUND + SILENCE_ROUNDS * ROUND) == "lab", "cut off: no word"


def test_a_candidate_that_never_claims_is_passed_over() -> None:
    lab = election("lab")
    lab.candidate("ghost", 9)  # a status says it is a master; it never leads
    start = LISTEN_ROUNDS * ROUND
    assert lab.leader(start) == "ghost"
    assert lab.leader(start + SILENCE_ROUNDS * ROUND) == "lab"


def test_a_new_term_is_above_every_term_seen() -> None:
    lab = election("lab")
    lab.leader_record(Record("annex", 7_000_000), 0)
    record = lab.claim(now_ms=5_000)
    assert record == Record("lab", 7_000_001)
    assert lab.claim(now_ms=9_000_000).term == 9_000_000


def test_an_older_record_does_not_undo_a_newer_one() -> None:
    lab = election("lab")
    lab.leader_record(Record("annex", 7_000), 0)
    lab.leader_record(Record("old", 6_000), 0)
    assert lab.record == Record("annex", 7_000)


def test_a_leader_whose_record_stands_keeps_leading_and_steps_down_for_a_newer() -> None:
    lab = election("lab")
    now = LISTEN_ROUNDS * ROUND
    assert lab.leader(now) == "lab"
    lab.claim(now_ms=5_000)
    assert lab.leader(now + 10 * ROUND) == "lab"
    lab.candidate("annex", 0)
    lab.leader_record(Record("annex", 6_000), now + 10 * ROUND)
    assert lab.leader(now + 10 * ROUND) == "annex"
