"""How a role's actions are carried out: messages published in order, tagged ones
reported back with their send instants, the last wake-up kept."""

from collections.abc import Hashable

from clocksync.core.clock import SoftwareClock
from clocksync.protocol.envelope import Action, Publish, Wake
from clocksync.roles.role import PassiveRole, carry_out


class Recorder(PassiveRole):
    name = "recorder"
    clock = SoftwareClock()

    def __init__(self) -> None:
        self.reported: list[tuple[Hashable, int | None]] = []

    def on_sent(self, tag: Hashable, mono: int | None) -> None:
        self.reported.append((tag, mono))


def test_actions_are_carried_out_in_order_and_the_last_wake_kept() -> None:
    role = Recorder()
    sent: list[str] = []

    def send(message: Publish) -> int | None:
        sent.append(message.topic)
        return None if message.topic == "lost" else 100 * len(sent)

    actions: list[Action] = [
        Wake(5),
        Publish("a", b""),
        Publish("b", b"", tag="b"),
        Wake(7),
        Publish("lost", b"", tag="lost"),
    ]
    assert carry_out(role, actions, send) == 7
    assert sent == ["a", "b", "lost"]
    assert role.reported == [("b", 200), ("lost", None)]
    assert carry_out(role, [Publish("c", b"")], send) is None
