"""The interface between a role and whatever runs it (the MQTT driver, the simulator).

A role is a state machine in the manner of ntpd-rs's `ntp-proto` and h11: it is given
inputs (connected, a message with its arrival time, a send completion with its send time, a
timer) and returns actions (publish, wake me at), and never touches a socket, a thread or
the time of day itself: its clock reads whatever time source it was built with.  So the
same role runs over a real broker, over the deterministic simulator, or under a unit test
that feeds it one message.
"""

from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

from clocksync.core.clock import SoftwareClock
from clocksync.protocol.envelope import Action, Inbound, Publish, Wake
from clocksync.protocol.signing import Signer


class Role(Protocol):
    """What a driver needs of a role."""

    name: str
    clock: SoftwareClock

    @property
    def signer(self) -> Signer | None:
        """The key that seals, at the send instant, what this role sends with a send-time
        marker (a time answer)."""
        ...

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to on every (re)connect."""
        ...

    def will(self) -> Publish | None:
        """The Last Will the broker publishes if this role vanishes."""
        ...

    def goodbye(self) -> list[Publish]:
        """What to publish on a clean shutdown (the broker does not send the will then)."""
        ...

    def on_connect(self, mono: int) -> list[Action]:
        """The link (re)connected at monotonic instant `mono`."""
        ...

    def on_message(self, message: Inbound) -> list[Action]:
        """A message arrived; bad input is logged and dropped, never raised."""
        ...

    def on_sent(self, tag: Hashable, mono: int | None) -> None:
        """A tagged Publish was handed to the network at `mono`, or was not sent (None)."""
        ...

    def on_timer(self, mono: int) -> list[Action]:
        """The instant of the last Wake has come; `mono` is now."""
        ...


class PassiveRole:
    """A role that does nothing unless a subclass says otherwise: no will, no goodbye, no
    action for any input.  Listeners and clients that only ask build on it."""

    name: str
    clock: SoftwareClock
    signer: Signer | None = None

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
        return None

    def on_timer(self, mono: int) -> list[Action]:
        return []


def carry_out(
    role: Role, actions: Sequence[Action], send: Callable[[Publish], int | None]
) -> int | None:
    """Publish the role's messages through `send` (which returns the send instant, or None
    when the message did not leave), report tagged ones back to the role, and return the
    instant of the last Wake among the actions, or None when there is none."""
    wake = None
    for action in actions:
        if isinstance(action, Wake):
            wake = action.at
            continue
        sent = send(action)
        if action.tag is not None:
            role.on_sent(action.tag, sent)
    return wake
