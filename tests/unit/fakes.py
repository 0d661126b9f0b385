"""What the unit tests share: time that moves only when told to, and shorthands for
feeding a role one message and reading its actions."""

from collections.abc import Sequence

from clocksync.core.clock import NS_PER_S, Discipline, SoftwareClock
from clocksync.protocol.envelope import Action, Inbound, Publish, Wake
from clocksync.protocol.wire import Message

START_WALL = 1_800_000_000 * NS_PER_S


class FakeTime:
    """A monotonic clock and a system clock that move only when told to."""

    def __init__(self) -> None:
        self.mono = 5 * NS_PER_S
        self.wall = START_WALL

    def advance(self, ns: int) -> None:
        self.mono += ns
        self.wall += ns

    def clock(
        self, *, offset_s: float = 0.0, drift_ppm: float = 0.0, **discipline: float
    ) -> SoftwareClock:
        return make_clock(self, offset_s=offset_s, drift_ppm=drift_ppm, **discipline)


def make_clock(
    fake: FakeTime, *, offset_s: float = 0.0, drift_ppm: float = 0.0, **discipline: float
) -> SoftwareClock:
    return SoftwareClock(
        offset_s=offset_s,
        drift_ppm=drift_ppm,
        discipline=Discipline(**discipline),  # type: ignore[arg-type]
        monotonic_ns=lambda: fake.mono,
        wall_ns=lambda: fake.wall,
    )


def inbound(
    topic: str,
    message: Message | bytes,
    at: int,
    *,
    response_topic: str | None = None,
    correlation: bytes | None = None,
) -> Inbound:
    """`message` (or raw bytes) arriving on `topic` at monotonic instant `at`."""
    payload = message if isinstance(message, bytes) else message.encode()
    return Inbound(topic, payload, at, response_topic, correlation, kernel_stamped=True)


def publishes(actions: Sequence[Action]) -> list[Publish]:
    return [action for action in actions if isinstance(action, Publish)]


def wake_of(actions: Sequence[Action]) -> int:
    """The instant of the last Wake among `actions`."""
    wakes = [action.at for action in actions if isinstance(action, Wake)]
    assert wakes, "a role always says when to wake it next"
    return wakes[-1]
