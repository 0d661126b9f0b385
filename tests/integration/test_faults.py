"""Availability end to end: standby masters, crashes and a frozen leader, a flood of ghost
statuses, every participant a process on a private Mosquitto (clocksync.testing.chaos),
since these tests kill the broker.  Everything is judged from outside, from the truth
signal and the round summaries; bench/faults.py measures the same faults exactly.

Rounds are half a second here; SILENCE_ROUNDS of them without a word from the leader make
a standby lead.
"""

import itertools
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.master.election import SILENCE_ROUNDS
from clocksync.master.membership import PROBES_PER_ROUND
from clocksync.testing.chaos import ChaosSite, Fault
from clocksync.testing.ghosts import PollWatcher, ghost_status
from clocksync.testing.processes import ClockSpec

INTERVAL_S = 0.5
TIMEOUT_S = 30.0
MASTERS = [ClockSpec("lab", 0.0), ClockSpec("lab-2", 0.02)]
LINES = [ClockSpec("KMC", -0.03), ClockSpec("MIT", 0.01), ClockSpec("TAPMI", -0.015),
         ClockSpec("SOLS", 0.025)]  # fmt: skip
"""Offsets under the step threshold: every correction is slewed, so any jump is a fault."""
STEP_LOGGED = re.compile(r"\bstep [+-]\d")
GHOSTS = 10_000


@pytest.fixture
def kitchen(tmp_path: Path) -> Iterator[ChaosSite]:
    with ChaosSite(tmp_path, MASTERS, LINES, interval_s=INTERVAL_S) as site:
        assert site.converge(TIMEOUT_S) < 0.001
        assert site.leader() == "lab", "the higher priority leads"
        yield site


def assert_no_clock_jumped(site: ChaosSite) -> None:
    assert site.jumps() == []
    for name in site.everyone:
        log = site.fleet.log_of(name)
        assert not STEP_LOGGED.search(log), f"{name} stepped its clock"
        assert "Traceback" not in log, name


def test_a_standby_leads_within_three_rounds_when_the_leader_dies_or_is_cut_off(
    kitchen: ChaosSite,
) -> None:
    crashed = kitchen.crash(Fault.LEADER, "lab", 0.5, TIMEOUT_S)
    assert crashed.took_over_s is not None
    assert crashed.took_over_s < SILENCE_ROUNDS * INTERVAL_S, "its Last Will says it is gone"
    assert crashed.leader == "lab-2"
    assert crashed.spread_s < 0.001
    kitchen.observer.pump(2 * INTERVAL_S)
    assert kitchen.leader() == "lab-2", "lab came back but does not take the lead back"
    assert "stands by" not in kitchen.fleet.log_of("lab-2")

    cut_at = len(kitchen.observer.rounds)
    frozen = kitchen.freeze("lab-2", 3.0, TIMEOUT_S)
    assert frozen.took_over_s is not None
    # A standby claims the lead after SILENCE_ROUNDS; its status says so within a round.
    assert frozen.took_over_s < (SILENCE_ROUNDS + 1) * INTERVAL_S
    assert frozen.leader == "lab"
    assert frozen.spread_s < 0.001
    kitchen.observer.pump(3 * INTERVAL_S)
    after_cut = kitchen.observer.rounds[cut_at:]
    masters = [summary.master for summary in after_cut]
    # On waking, lab-2 may close the round it was in, in its old term (its corrections are
    # fenced off); after that only lab leads.
    since_lab_led = after_cut[masters.index("lab") :]
    stale = [summary for summary in since_lab_led if summary.master == "lab-2"]
    assert len(stale) <= 1, masters
    assert all(summary.epoch < since_lab_led[0].epoch for summary in stale)
    assert masters[-4:] == ["lab"] * 4, "the site split after the old leader came back"
    assert "stands by: lab leads now" in kitchen.fleet.log_of("lab-2")
    assert_no_clock_jumped(kitchen)


def test_twenty_crashes_of_the_broker_leader_standby_and_lines(kitchen: ChaosSite) -> None:
    rng = random.Random(20261128)
    kinds = itertools.cycle([Fault.NODE, Fault.LEADER, Fault.BROKER, Fault.STANDBY])
    deadline = time.monotonic() + 300
    for fault in itertools.islice(kinds, 20):
        assert time.monotonic() < deadline, "the faults took too long to recover from"
        if fault is Fault.LEADER:
            target = kitchen.leader() or "lab"
        elif fault is Fault.STANDBY:
            target = kitchen.standby()
        else:
            target = "broker" if fault is Fault.BROKER else rng.choice(kitchen.nodes)
        survivors = {
            name: process for name, process in kitchen.fleet.processes.items() if name != target
        }
        recovery = kitchen.crash(fault, target, rng.uniform(0.2, 1.0), TIMEOUT_S)
        assert recovery.spread_s < 0.001, recovery
        for name, process in survivors.items():
            assert process.poll() is None, f"{name} died when the {fault} ({target}) was killed"
            assert kitchen.fleet.processes[name] is process
    assert_no_clock_jumped(kitchen)


def test_ten_thousand_ghosts_leave_the_rounds_where_they_were(tmp_path: Path) -> None:
    with ChaosSite(tmp_path, MASTERS[:1], LINES, interval_s=INTERVAL_S) as site:
        site.converge(TIMEOUT_S)
        watcher = PollWatcher(site)
        try:
            ghosts = [f"ghost-{index:05d}" for index in range(GHOSTS)]
            before = watcher.watch(6)
            watcher.retain_statuses({name: ghost_status(name) for name in ghosts})
            haunted = watcher.watch(10)
            watcher.retain_statuses(dict.fromkeys(ghosts, b""))
            watcher.pump(2 * INTERVAL_S)
            exorcised = watcher.watch(4)
        finally:
            watcher.link.close([])
    assert sum(haunted.ghost_polls) > 0, "the master never even probed the ghosts"
    assert max(haunted.ghost_polls) <= 2 * PROBES_PER_ROUND
    assert max(haunted.spreads_s) < 0.001
    assert haunted.period_s < before.period_s + 0.1
    assert haunted.all_answered == 10
    assert max(haunted.summary_bytes) < max(before.summary_bytes) + 200, "listed the ghosts"
    assert max(haunted.missing_listed) == 0
    assert sum(exorcised.ghost_polls) == 0, "ghosts deleted from the broker are still polled"
    assert exorcised.all_answered == 4
