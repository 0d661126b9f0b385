"""The master's schedule, driven by a fake clock and no broker: rounds start on time, polls
are paced through the round, and a master far behind catches up without failing."""

from clocksync.clock import NS_PER_S, SoftwareClock
from clocksync.messages import Status
from clocksync.transport import BrokerUrl, Inbound
from master.berkeley import BerkeleyMaster
from master.rounds import RoundPlan

START = 1_000 * NS_PER_S


class FakeTime:
    def __init__(self) -> None:
        self.mono = START

    def monotonic_ns(self) -> int:
        return self.mono

    def wall_ns(self) -> int:
        return 1_800_000_000 * NS_PER_S + self.mono


def make_master(nodes: int, time: FakeTime) -> BerkeleyMaster:
    clock = SoftwareClock(monotonic_ns=time.monotonic_ns, wall_ns=time.wall_ns)
    master = BerkeleyMaster(
        name="lab",
        site="schedule",
        broker=BrokerUrl("127.0.0.1", 9),
        clock=clock,
        plan=RoundPlan(interval_s=1.0, samples=2),
    )
    for index in range(nodes):
        name = f"n{index:05d}"
        status = Status(name, "node", "online", "berkeley", 0.0, time.wall_ns())
        master.handle(Inbound(master.topics.status(name), status.encode(), time.mono))
    return master


def test_polls_are_paced_through_the_round_and_the_round_closes_on_time() -> None:
    time = FakeTime()
    master = make_master(4, time)
    master.connected()
    first = master.tick(time.mono)
    assert first == START + NS_PER_S
    time.mono = first
    pace = round(0.8 * 0.5 / 8 * NS_PER_S)
    assert master.tick(time.mono) == first + pace
    time.mono = first + 3 * pace
    assert master.tick(time.mono) == first + 4 * pace
    time.mono = first + 7 * pace
    assert master.tick(time.mono) == first + NS_PER_S // 2
    time.mono = first + NS_PER_S // 2
    assert master.tick(time.mono) == first + NS_PER_S


def test_a_master_far_behind_sends_every_poll_it_owes_at_once() -> None:
    time = FakeTime()
    master = make_master(5_000, time)
    started = time.mono
    pace = round(0.8 * 0.5 / 10_000 * NS_PER_S)
    assert master.tick(started) == started + pace
    time.mono += NS_PER_S // 4
    owed = NS_PER_S // 4 // pace
    assert master.tick(time.mono) == started + (owed + 1) * pace
