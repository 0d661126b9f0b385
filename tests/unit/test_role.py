"""How a role's actions are carried out: messages published in order, tagged ones
reported back with their send instants, the last wake-up kept."""

from collections.abc import Hashable

from clocksync.core.clock import SoftwareClock
from clocksync.protocol.envelope import Action, Inbound, Publish, Wake
from clocksync.roles.role import carry_out


class Recorder:
    name = "recorder"
    clock = SoftwareClock()

    def __init__(self) -> None:
        self.reported: list[tuple[Hashable, int | None]] = []

    def subscriptions(self) -> list[str]:
        return []

    def will(self) -> Publish | None:
        return None

    def goodbye(self) -> list[Publish]:
        return []

    def on_connect(self, mono: int) -> list[Action]:
        return []

    def on_message(self, message: Inbound) -> list[Action]:
        return []

    def on_sent(self, tag: Hashable, mono: int | None) -> None:
        self.reported.append((tag, mono))

    def on_timer(self, mono: int) -> list[Action]:
        return []


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
