"""The Berkeley master's decisions, in-process with a fake clock: whom it polls, when, what
it makes of the replies, and what it sends back."""

from collections.abc import Sequence
from dataclasses import replace

import pytest

from clocksync.core.clock import NS_PER_S
from clocksync.master.berkeley import BerkeleyMaster
from clocksync.master.leading import PollSent
from clocksync.master.membership import Polling
from clocksync.master.rounds import RoundPlan
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Publish
from clocksync.protocol.messages import Correction, Leader, Poll, Reply, RoundSummary, Status
from clocksync.protocol.topics import Topics
from tests.unit.fakes import FakeTime, inbound, publishes, wake_of

US = 1_000
TOPICS = Topics("kitchen")


def make_master(time: FakeTime, nodes: int = 0, **plan: float) -> BerkeleyMaster:
    master = BerkeleyMaster(
        name="lab",
        site="kitchen",
        clock=time.clock(),
        plan=RoundPlan(**{"interval_s": 1.0, "samples": 2, **plan}),  # type: ignore[arg-type]
    )
    names = [f"n{index:05d}" for index in range(nodes)]
    for name in names:
        announce(master, time, name)
    # As if they had answered a round already: live, so polled fully.
    master.membership.close(0, Polling(live=(), probes=tuple(names)), names)
    return master


def announce(
    master: BerkeleyMaster,
    time: FakeTime,
    name: str,
    *,
    state: State = State.ONLINE,
    sync: SyncMode = SyncMode.BERKELEY,
    role: RoleKind = RoleKind.NODE,
) -> None:
    status = Status(name, role, state, sync, 0.0, time.wall)
    master.on_message(inbound(TOPICS.status(name), status, time.mono))


def test_the_nodes_to_poll_are_the_online_berkeley_nodes() -> None:
    time = FakeTime()
    master = make_master(time)
    announce(master, time, "KMC")
    announce(master, time, "MIT")
    announce(master, time, "phone", sync=SyncMode.CRISTIAN)
    announce(master, time, "bank", role=RoleKind.TIMESERVER, sync=SyncMode.REFERENCE)
    assert master.membership.members == {"KMC", "MIT"}
    forged = Status("SOLS", RoleKind.NODE, State.ONLINE, SyncMode.BERKELEY)
    master.on_message(inbound(TOPICS.status("KMC"), forged, time.mono))
    assert master.membership.members == {"KMC", "MIT"}, "a status speaks only for its topic"


def test_a_node_that_says_it_leaves_goes_when_it_misses_a_round() -> None:
    """A status saying offline (or cristian) may be forged: a node that goes on answering
    stays; one that really left misses the next round and goes, not listed as missing."""
    time = FakeTime()
    master = make_master(time)
    for name in ("KMC", "MIT", "SOLS"):
        announce(master, time, name)
    run_round(master, time, [Line("KMC", 0), Line("MIT", 0), Line("SOLS", 0)])
    announce(master, time, "MIT", state=State.OFFLINE)
    announce(master, time, "SOLS", sync=SyncMode.CRISTIAN)  # forged, say
    sent = run_round(master, time, [Line("KMC", 0), Line("SOLS", 0)])  # MIT is gone
    (summary,) = [RoundSummary.decode(p.payload) for p in sent if p.topic == TOPICS.round]
    assert summary.missing == ()
    assert master.membership.members == {"KMC", "SOLS"}, "SOLS answered, whatever its status said"


def lead(master: BerkeleyMaster, time: FakeTime) -> int:
    """Connect the master, let it listen and take the lead; when its first round starts."""
    start = time.mono
    connected(master, time)
    first = wake_of(master.on_timer(time.mono))
    assert first == start + 3 * NS_PER_S, "it listens two intervals, then waits one more"
    return first


def test_polls_are_paced_through_the_round_and_the_round_closes_on_time() -> None:
    time = FakeTime()
    master = make_master(time, nodes=4, samples=8)
    first = lead(master, time)
    time.mono = first
    pace = round(0.8 * 0.5 / 32 * NS_PER_S)
    actions = master.on_timer(time.mono)
    assert len([p for p in publishes(actions) if "/poll/" in p.topic]) == 1
    assert wake_of(actions) == first + pace
    time.mono = first + 3 * pace
    actions = master.on_timer(time.mono)
    assert len(publishes(actions)) == 3
    assert all(poll.nudge for poll in publishes(actions)), "the broker woken for each poll"
    assert wake_of(actions) == first + 4 * pace
    time.mono = first + 31 * pace
    assert wake_of(master.on_timer(time.mono)) == first + NS_PER_S // 2
    time.mono = first + NS_PER_S // 2
    actions = master.on_timer(time.mono)
    assert wake_of(actions) == first + NS_PER_S
    assert any(p.topic == TOPICS.round for p in publishes(actions))


def test_a_master_far_behind_sends_every_poll_it_owes_at_once() -> None:
    time = FakeTime()
    master = make_master(time, nodes=5_000)
    time.mono = started = lead(master, time)
    pace = round(0.8 * 0.5 / 10_000 * NS_PER_S)
    assert wake_of(master.on_timer(started)) == started + pace
    time.mono += NS_PER_S // 4
    owed = NS_PER_S // 4 // pace
    actions = master.on_timer(time.mono)
    assert len(publishes(actions)) == owed
    assert wake_of(actions) == started + (owed + 1) * pace


class Line:
    """A node's clock, `offset_ns` ahead of the master's, `one_way_ns` away each way."""

    def __init__(self, name: str, offset_ns: int, one_way_ns: int = 50 * US) -> None:
        self.name = name
        self.offset_ns = offset_ns
        self.one_way_ns = one_way_ns

    def reply_to(self, poll: Poll, t1: int) -> tuple[Reply, int]:
        """The reply, and the master-clock instant t4 it arrives (the node answers at once)."""
        t2 = t1 + self.one_way_ns + self.offset_ns
        reply = Reply(self.name, poll.epoch, poll.round, poll.seq, t2, t2)
        return reply, t1 + 2 * self.one_way_ns


def connected(master: BerkeleyMaster, time: FakeTime) -> None:
    """Connect the master and let it listen until it leads: two intervals."""
    master.on_connect(time.mono)
    time.mono += 2 * NS_PER_S


def run_round(master: BerkeleyMaster, time: FakeTime, lines: Sequence[Line]) -> list[Publish]:
    """Drive the master until it closes a round, the lines answering every poll at once
    (connecting it first if it is not); what the master sent besides its polls."""
    if master.election is None:
        connected(master, time)
    by_name = {line.name: line for line in lines}
    sent: list[Publish] = []
    while not any(publish.topic == TOPICS.round for publish in sent):
        actions = master.on_timer(time.mono)
        for publish in publishes(actions):
            if not isinstance(publish.tag, PollSent):
                sent.append(publish)
                continue
            master.on_sent(publish.tag, time.mono)
            poll = Poll.decode(publish.payload)
            line = by_name.get(poll.node)
            if line is None:
                continue
            t1 = master.clock.reading_at(time.mono)
            reply, t4 = line.reply_to(poll, t1)
            arrival = time.mono + (t4 - t1)
            master.on_message(inbound(TOPICS.reply(line.name), reply, arrival))
        time.mono = max(wake_of(actions), time.mono + 1)
    return sent


def test_a_round_averages_the_clocks_and_sends_each_its_correction() -> None:
    time = FakeTime()
    master = make_master(time, nodes=0)
    lines = [Line("KMC", 3_000 * US), Line("MIT", -1_000 * US), Line("SOLS", 3_600 * NS_PER_S)]
    for line in lines:
        announce(master, time, line.name)
    announce(master, time, "TAPMI")  # online, but never answers: probed, not "missing"
    sent = run_round(master, time, lines)
    corrections = {
        Correction.decode(p.payload).node: Correction.decode(p.payload)
        for p in sent
        if "/correction/" in p.topic
    }
    (summary_message,) = [p for p in sent if p.topic == TOPICS.round]
    summary = RoundSummary.decode(summary_message.payload)
    assert summary_message.retain
    average = (0.003 - 0.001 + 0.0) / 3  # SOLS, an hour off, is left out
    assert summary.average_s == pytest.approx(average, abs=1e-9)
    rows = {row.name: row for row in summary.participants}
    assert rows["SOLS"].excluded
    assert not rows["KMC"].excluded
    assert (summary.missing, summary.missing_count) == ((), 0)
    assert corrections["KMC"].correction_s == pytest.approx(average - 0.003, abs=1e-9)
    assert corrections["MIT"].correction_s == pytest.approx(average + 0.001, abs=1e-9)
    assert corrections["SOLS"].correction_s == pytest.approx(average - 3600, abs=1e-6)
    assert set(corrections) == {"KMC", "MIT", "SOLS"}
    assert all(c.epoch == master.epoch and c.round == 1 for c in corrections.values())
    assert master.clock.updates == 1, "the master corrects itself too"


def test_replies_that_answer_no_poll_of_the_open_round_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    master = make_master(time)
    run_round(master, time, [])
    assert master.leading is not None
    late = Reply("KMC", master.leading.epoch, 1, 0, time.wall, time.wall)
    caplog.clear()
    with caplog.at_level("INFO"):
        for _ in range(100):
            master.on_message(inbound(TOPICS.reply("KMC"), late, time.mono))
        assert caplog.text == "", "late replies are counted, not logged each"
        run_round(master, time, [])
        assert "dropped 100 late replies" in caplog.text
    master.on_message(inbound(TOPICS.reply("KMC"), b"[]", time.mono))
    assert "dropped a bad reply" in caplog.text
    spoofed = Reply("MIT", master.epoch, 1, 0, time.wall, time.wall)
    master.on_message(inbound(TOPICS.reply("KMC"), spoofed, time.mono))
    assert "dropped a reply for 'MIT'" in caplog.text


def test_a_poll_that_did_not_leave_gives_no_sample() -> None:
    time = FakeTime()
    master = make_master(time, samples=1)
    announce(master, time, "KMC")
    time.mono = lead(master, time)
    (poll_message,) = [p for p in publishes(master.on_timer(time.mono)) if p.tag is not None]
    master.on_sent(poll_message.tag, None)
    poll = Poll.decode(poll_message.payload)
    reply = Reply("KMC", poll.epoch, poll.round, 0, time.wall, time.wall)
    master.on_message(inbound(TOPICS.reply("KMC"), reply, time.mono + 100 * US))
    time.mono += NS_PER_S // 2
    (summary_message,) = [
        p for p in publishes(master.on_timer(time.mono)) if p.retain and "round" in p.topic
    ]
    summary = RoundSummary.decode(summary_message.payload)
    assert [entry.name for entry in summary.participants] == ["lab"]


def test_status_toggles_do_not_size_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8, defect 10: 10,000 status toggles wrote 10,006 lines at INFO."""
    time = FakeTime()
    master = make_master(time)
    with caplog.at_level("INFO"):
        for index in range(5_000):
            announce(master, time, "KMC")
            announce(master, time, "KMC", state=State.OFFLINE)
            time.advance(index)
    assert len(caplog.records) < 10


def test_a_leader_announces_itself_on_taking_the_lead_and_again_on_every_reconnect() -> None:
    time = FakeTime()
    master = make_master(time, nodes=1)
    connected(master, time)
    records = [p for p in publishes(master.on_timer(time.mono)) if p.topic == TOPICS.leader]
    assert len(records) == 1
    assert records[0].retain
    first = Leader.decode(records[0].payload)
    assert first.leader == "lab"
    time.mono += NS_PER_S // 10
    later = publishes(master.on_timer(time.mono))
    assert not [p for p in later if p.topic == TOPICS.leader], "announced once while connected"
    time.mono += NS_PER_S  # the broker restarted, without its retained messages
    again = [p for p in publishes(master.on_connect(time.mono)) if p.topic == TOPICS.leader]
    assert [Leader.decode(p.payload) for p in again] == [first], "the same term, since then"


def test_fleet_statuses_are_not_polled_and_a_polled_node_turning_fleet_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    master = make_master(time)
    announce(master, time, "kiosk", sync=SyncMode.FLEET)
    announce(master, time, "KMC")
    assert master.membership.members == {"KMC"}
    announce(master, time, "KMC", sync=SyncMode.FLEET)  # decoded: a member still
    plan = master.membership.plan(1)
    master.membership.close(1, plan, [])
    assert "KMC" not in master.membership.members, "it said it left the polled rounds"
    master.on_message(inbound(TOPICS.status("kiosk"), b'{"sync": "fleet", "v": 2}', time.mono))
    assert not caplog.records, "a fleet status is not decoded, so not complained of"


class SteeredLine(Line):
    """A node whose free-running clock runs `natural_ppm` from the master's, steered by
    moves of its own (as its corrections, or anything, may steer it): it says how far in
    every reply, as a clocksync node does."""

    def __init__(self, name: str, natural_ppm: float, master: BerkeleyMaster, time: FakeTime):
        super().__init__(name, 0)
        self.natural_ppm = natural_ppm
        self.master = master
        self.time = time
        self.start = time.mono
        self.adjusted_ns = 0
        self.tell = True

    def reply_to(self, poll: Poll, t1: int) -> tuple[Reply, int]:
        clock, mono = self.master.clock, self.time.mono
        free_offset = round((mono - self.start) * self.natural_ppm * 1e-6)
        self.offset_ns = free_offset + self.adjusted_ns - clock.adjusted_ns(mono)
        reply, t4 = super().reply_to(poll, t1)
        if self.tell:
            reply = replace(reply, adjusted_s=self.adjusted_ns / NS_PER_S)
        return reply, t4


def test_the_leader_runs_at_its_clocks_mean_natural_rate_however_they_are_steered() -> None:
    """The lines are steered every round by moves of their own, as if they followed noise:
    the offsets the master measures wander, but what the lines say of their steering
    leaves their free-running clocks, whose rates average to the site's frequency."""
    time = FakeTime()
    master = make_master(time)
    lines = [SteeredLine("KMC", 40.0, master, time), SteeredLine("MIT", 80.0, master, time)]
    for line in lines:
        announce(master, time, line.name)
    sent: list[Publish] = []
    for number in range(30):
        for index, line in enumerate(lines):
            line.adjusted_ns += (-1) ** (number + index) * 30 * US  # noise, followed
        sent = run_round(master, time, lines)
    assert master.clock.frequency_ppm == pytest.approx((0 + 40 + 80) / 3, abs=1.0)
    corrections = [Correction.decode(p.payload) for p in sent if "/correction/" in p.topic]
    assert {c.frequency_ppm for c in corrections} == {master.clock.frequency_ppm}
    for correction in corrections:
        assert correction.reference_s is not None
        assert correction.reference_now_s is not None
        grown = correction.reference_now_s - correction.reference_s
        assert 0 <= grown < 0.5 * 40e-6 * 1.01, "the master's own rate, over part of a round"


def test_lines_that_do_not_say_how_they_are_steered_leave_the_leaders_rate_alone() -> None:
    time = FakeTime()
    master = make_master(time)
    lines = [SteeredLine("KMC", 40.0, master, time), SteeredLine("MIT", 80.0, master, time)]
    for line in lines:
        line.tell = False
        announce(master, time, line.name)
    for _ in range(15):
        run_round(master, time, lines)
    assert master.clock.frequency_ppm == 0.0


def test_a_standby_that_answers_the_leaders_polls_hears_it_alive() -> None:
    """Three round summaries lost in a row must not make a standby take over while the
    leader's polls keep coming: they count as much."""
    time = FakeTime()
    standby = BerkeleyMaster(name="annex", site="kitchen", clock=time.clock(), plan=RoundPlan())
    standby.on_connect(time.mono)
    leader_status = Status("lab", RoleKind.MASTER, State.ONLINE, SyncMode.BERKELEY, priority=1)
    standby.on_message(inbound(TOPICS.status("lab"), leader_status, time.mono))
    term = 1_800_000_000_000
    standby.on_message(inbound(TOPICS.leader, Leader("lab", term, time.wall), time.mono))
    for second in range(8):
        time.advance(NS_PER_S)
        poll = Poll("lab", "annex", term, second + 1, 0)
        standby.on_message(inbound(TOPICS.poll("annex"), poll, time.mono))
        standby.on_timer(time.mono)
        assert standby.leading is None, f"took over at second {second + 1}"
