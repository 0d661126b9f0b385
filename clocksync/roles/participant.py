"""What the roles with a retained status share: a clock, its discipline, the heartbeat.

A role (Berkeley master, Berkeley node, time server, Cristian node) subclasses Participant,
says what to subscribe to, answers messages in `handle` and does its timed work in `tick`;
both return the messages to publish.  The base turns that into the Role interface
(clocksync.roles.role), adds the status heartbeat and the wake-up times, and applies
corrections to the clock.  No I/O: the messages are only returned.
"""

import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

from clocksync.core.clock import NS_PER_S, Applied, SoftwareClock
from clocksync.core.intervals import Estimate, IntervalHistory, interval_of, source_of
from clocksync.core.sample import Sample
from clocksync.core.tracking import SPIKE_MIN_POINTS, Point, Reference, Tracking, Verdict
from clocksync.protocol.enums import RoleKind, State, SyncMode
from clocksync.protocol.envelope import Action, Inbound, Publish, Wake
from clocksync.protocol.messages import Status
from clocksync.protocol.signing import NO_KEYS, Keys, Signer, TrustedKeys
from clocksync.protocol.topics import Topics, check_name
from clocksync.protocol.wire import MAX_PPM, Message, MessageError

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)

SKEW_SIGMAS = 3.0
WANDER_PPM = 1.0
"""A reported bound grows between corrections by SKEW_SIGMAS standard errors of the clock's
frequency estimate plus WANDER_PPM (chrony's maxclockerror: what a crystal wanders that no
estimate foresees)."""
IDLE_NS = 3600 * NS_PER_S
"""How long a role with no timed work of its own lets the status heartbeat set its wake-ups."""
CLIP = 80


def clip(text: str | None) -> str:
    """`text` cut short for a log line: whoever can publish sizes what it carries."""
    if text is None:
        return "none"
    return text if len(text) <= CLIP else f"{text[:CLIP]}... ({len(text)} characters)"


def receive(
    message: Inbound, kind: type[M], topics: Topics, trusted: TrustedKeys | None = None
) -> M | None:
    """`message` decoded as a `kind`, or None, the reason logged: a bad payload, one that
    speaks for another participant than its topic names, or, with `trusted` keys, a
    time-bearing one without a trusted seal."""
    if trusted is not None and kind.sealed:
        refusal = trusted.refusal(message.payload)
        if refusal is not None:
            log.warning("dropped a %s on %s: %s", kind.kind, clip(message.topic), refusal)
            return None
    try:
        decoded = kind.decode(message.payload)
    except MessageError as error:
        log.warning("dropped a bad %s on %s: %s", kind.kind, clip(message.topic), error)
        return None
    subject = None if kind.subject is None else getattr(decoded, kind.subject)
    if subject is not None and subject != topics.name_in(message.topic):
        log.warning("dropped a %s for %r on %s", kind.kind, subject, clip(message.topic))
        return None
    return decoded


@dataclass(frozen=True)
class Measured:
    """A correction as measured: add `correction_s` to the clock as it was at monotonic
    instant `mono_ns`, when its total adjustment was `adjusted_ns`.  `delay_s` is the
    measurement's round trip and `error_bound_s` how far off it may be, where known."""

    correction_s: float
    adjusted_ns: int
    mono_ns: int
    delay_s: float | None = None
    error_bound_s: float | None = None
    evidence: tuple[Sample, ...] = ()
    """Every exchange of the burst it came from (the best, `source`'s, among them): once
    the clock's frequency is known, their history sets the correction
    (clocksync.core.intervals)."""
    source: Hashable = None
    reference: Reference | None = None
    """How the reference clock is steered, where it says (clocksync.core.tracking)."""


class Participant(ABC):
    """A clock with a retained status topic; subclasses add the protocol."""

    kind: ClassVar[RoleKind]
    sync: ClassVar[SyncMode]
    status_after_correction: ClassVar[bool] = True
    """Publish a status as soon as a correction's slew is done, not only every interval."""

    def __init__(
        self,
        *,
        name: str,
        site: str,
        clock: SoftwareClock,
        status_interval_s: float,
        keys: Keys = NO_KEYS,
    ) -> None:
        self.name = check_name(name)
        self.topics = Topics(site)
        self.clock = clock
        self.keys = keys
        self._status_interval_ns = round(status_interval_s * NS_PER_S)
        self._status_due = 0
        self._work_due = 0
        self.last_correction_s: float | None = None
        self.last_error_bound_s: float | None = None
        self._bound_mono = 0
        self.tracking = Tracking(frequency_ppm=clock.frequency_ppm)
        self.intervals = IntervalHistory()

    @abstractmethod
    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to on every (re)connect."""

    @abstractmethod
    def handle(self, message: Inbound) -> list[Publish]:
        """Answer one message; bad input is logged and dropped, never raised."""

    def tick(self, mono: int) -> tuple[list[Publish], int]:
        """Do the work due at monotonic instant `mono`; return what to publish and when
        next to be called.  Roles that only react to messages have none."""
        return [], mono + IDLE_NS

    def sent(self, tag: Hashable, mono: int | None) -> None:
        """A tagged message left at `mono` (None: it did not leave); by default ignored."""
        return

    def connected(self, mono: int) -> None:
        """Called on every (re)connect, before the status goes out; by default nothing."""
        return

    @property
    def signer(self) -> Signer | None:
        return self.keys.signer

    def receive(self, message: Inbound, kind: type[M]) -> M | None:
        """`message` as a `kind`, under a trusted seal if this participant trusts keys."""
        return receive(message, kind, self.topics, self.keys.trusted)

    def seal(self, payload: bytes) -> bytes:
        """`payload` under this participant's seal, if it has a key."""
        return payload if self.keys.signer is None else self.keys.signer.seal(payload)

    def leader_name(self) -> str | None:
        """The master this participant follows, or is; None for roles outside rounds."""
        return None

    def priority(self) -> int | None:
        """How much this participant wants to lead: None for all but masters."""
        return None

    def will(self) -> Publish:
        return self._status(State.OFFLINE, measured=False)

    def goodbye(self) -> list[Publish]:
        return [self._status(State.OFFLINE, measured=True)]

    def on_connect(self, mono: int) -> list[Action]:
        """Say at once that this participant is online."""
        self._status_due = mono
        self.connected(mono)
        return self.on_timer(mono)

    def on_message(self, message: Inbound) -> list[Action]:
        return [*self.handle(message), self._wake()]

    def on_sent(self, tag: Hashable, mono: int | None) -> None:
        self.sent(tag, mono)

    def on_timer(self, mono: int) -> list[Action]:
        actions: list[Action] = []
        if mono >= self._status_due:
            actions.append(self.status())
        if mono >= self._work_due:
            work, self._work_due = self.tick(mono)
            actions += work
        actions.append(self._wake())
        return actions

    def work_now(self) -> None:
        """Have `tick` called as soon as the current input is handled."""
        self._work_due = 0

    def status(self) -> Publish:
        """The online status, now; the next is due a status interval later."""
        self._status_due = self.clock.monotonic_ns() + self._status_interval_ns
        return self._status(State.ONLINE, measured=True)

    def apply_correction(self, measured: Measured) -> bool:
        """Take a correction measured when the clock's total adjustment was
        `measured.adjusted_ns` (see SoftwareClock.correct_measured) into the clock's history
        and apply what the history makes of it (clocksync.core.tracking); report it in the
        status, once any slew is done.  Say whether it was taken: the discipline refuses one
        beyond its maximum change (a held-back spike is taken, only not applied)."""
        clock = self.clock
        correction_ns = round(measured.correction_s * NS_PER_S)
        remaining = correction_ns - clock.slewed_since(measured.adjusted_ns, measured.mono_ns)
        refusal = clock.refusal(remaining)
        if refusal is not None:
            clock.refused += 1
            log.warning("refused a correction (%s): %s", self.name, refusal)
            return False
        point = Point(
            measured.mono_ns,
            measured.adjusted_ns + correction_ns,
            None if measured.delay_s is None else round(measured.delay_s * NS_PER_S),
            measured.reference,
        )
        tracking = self.tracking
        verdict = tracking.add(point)
        if verdict is Verdict.HOLD:
            log.info(
                "held back a correction of %+.6f s (%s): %.6f s off its history",
                remaining / NS_PER_S,
                self.name,
                (point.needed_ns - (tracking.needed_at(point.mono_ns) or 0)) / NS_PER_S,
            )
            return True
        self._keep_evidence(measured, anew=verdict is Verdict.APPLY)
        bound_s = measured.error_bound_s
        bound_mono = None
        if verdict is Verdict.FIT:
            now = clock.monotonic_ns()
            estimate = self._from_history(measured, now)
            if estimate is not None:
                remaining = round(estimate.needed_ns) - clock.adjusted_ns(now)
                bound_s, bound_mono = estimate.bound_ns / NS_PER_S, now
            else:
                remaining = round(tracking.needed_at(now) or 0) - clock.adjusted_ns(now)
                departure_ns = abs((tracking.needed_at(point.mono_ns) or 0) - point.needed_ns)
                if bound_s is not None:
                    bound_s += departure_ns / NS_PER_S
        frequency_ppm = tracking.frequency_ppm()
        if verdict is Verdict.APPLY and frequency_ppm is not None:
            # Since the measurement the clock ran at its old rate; it needed the new one.
            since_ns = clock.monotonic_ns() - measured.mono_ns
            remaining += round((frequency_ppm - clock.frequency_ppm) * 1e-6 * since_ns)
        how = clock.correct(remaining, frequency_ppm=frequency_ppm)
        if how is Applied.REFUSED:
            log.warning("refused a correction (%s): %s", self.name, clock.refusal(remaining))
            return False
        self.last_correction_s = measured.correction_s
        self.last_error_bound_s = bound_s
        self._bound_mono = clock.monotonic_ns() if bound_mono is None else bound_mono
        level = logging.WARNING if how is Applied.STEP else logging.DEBUG
        log.log(level, "%s %+.6f s (%s)", how.value, remaining / NS_PER_S, self.name)
        if self.status_after_correction:
            self._status_due = min(self._status_due, clock.slew_end_mono() or 0)
        return True

    def steer(
        self, move_s: float, adjusted_then: int, mono_then: int, frequency_ppm: float | None
    ) -> bool:
        """A leader's own correction: move the clock by `move_s` as it was at `mono_then`,
        when its total adjustment was `adjusted_then`, and run it at `frequency_ppm` (None:
        as it runs).  No history filters it: the leader's clock is the site's reference,
        and its rate is the ensemble's (clocksync.master.ensemble).  Say whether it was
        taken: the discipline may refuse it."""
        clock = self.clock
        remaining = round(move_s * NS_PER_S) - clock.slewed_since(adjusted_then, mono_then)
        how = clock.correct(remaining, frequency_ppm=frequency_ppm)
        if how is Applied.REFUSED:
            log.warning("refused a correction (%s): %s", self.name, clock.refusal(remaining))
            return False
        self.last_correction_s = move_s
        level = logging.WARNING if how is Applied.STEP else logging.DEBUG
        log.log(level, "%s %+.6f s (%s)", how.value, remaining / NS_PER_S, self.name)
        if self.status_after_correction:
            self._status_due = min(self._status_due, clock.slew_end_mono() or 0)
        return True

    def _keep_evidence(self, measured: Measured, *, anew: bool) -> None:
        """Add the burst's exchanges to their servers' histories; `anew` (the clock's
        history starts over, or is still acquiring): in place of the earlier ones."""
        if anew:
            self.intervals.clear()
        by_source: dict[Hashable, list[Sample]] = {}
        for sample in measured.evidence:
            by_source.setdefault(source_of(sample), []).append(sample)
        for source, samples in by_source.items():
            self.intervals.add(source, (interval_of(sample) for sample in samples))

    def _from_history(self, measured: Measured, now: int) -> Estimate | None:
        """What the clock needs now by the intersection of its exchanges with the best
        one's server, carried along the frequency line; when they do not meet, that
        server's history starts over from this burst."""
        slope = self.tracking.slope()
        if not measured.evidence or slope is None:
            return None
        source, growth = measured.source, self._growth_ppm() * 1e-6
        estimate = self.intervals.estimate(source, now, slope, growth)
        if estimate is None:
            log.info("%s: the history of exchanges with %s starts over", self.name, source)
            newest = [s for s in measured.evidence if source_of(s) == source]
            self.intervals.add(source, (interval_of(s) for s in newest), anew=True)
            estimate = self.intervals.estimate(source, now, slope, growth)
        return estimate

    def _growth_ppm(self) -> float:
        """How fast this clock may drift off the frequency line: SKEW_SIGMAS standard errors
        of its estimate plus WANDER_PPM, or, before the history is long enough to judge its
        own estimate, the clock's whole rate bound."""
        line, error_ppm = self.tracking.line(), self.tracking.frequency_error_ppm
        if line is not None and line.points >= SPIKE_MIN_POINTS and error_ppm is not None:
            return SKEW_SIGMAS * error_ppm + WANDER_PPM
        return self.clock.rate_error_ppm(may_slew=False)

    def frequency_error_ppm(self) -> float | None:
        """The standard error of the frequency correction in force, once estimated: by
        default, the one the clock's history gives."""
        return self.tracking.frequency_error_ppm

    @property
    def synchronized(self) -> bool:
        """Whether this clock keeps the site's time: a reference clock (a master, a time
        server) always, a node once it has applied a correction."""
        return self.kind != RoleKind.NODE or self.clock.updates > 0

    def error_bound_s(self, mono: int | None = None) -> float | None:
        """How far off this clock may be at `mono` (default now), where known: the bound
        of its last correction, grown since at the rate its frequency may still be off
        (SKEW_SIGMAS, WANDER_PPM; before its history is long enough to judge its own
        estimate, the clock's whole rate bound), plus what is left of a slew under way: the
        correction's bound holds for the clock that has taken it in."""
        if self.last_error_bound_s is None:
            return None
        clock = self.clock
        mono = clock.monotonic_ns() if mono is None else mono
        elapsed_s = max(0, mono - self._bound_mono) / NS_PER_S
        slewing_s = abs(clock.slew_remaining_ns(mono)) / NS_PER_S
        return self.last_error_bound_s + self._growth_ppm() * 1e-6 * elapsed_s + slewing_s

    def _wake(self) -> Wake:
        return Wake(min(self._status_due, self._work_due))

    def _status(self, state: State, *, measured: bool) -> Publish:
        status = Status(
            name=self.name,
            role=self.kind,
            state=state,
            sync=self.sync,
            updates=self.clock.updates,
            leader=self.leader_name() if measured else None,
            priority=self.priority(),
        )
        if measured:
            offset_ns, host_ns = self.clock.host_offset_ns()
            status = replace(
                status,
                host_offset_s=offset_ns / NS_PER_S,
                host_time=host_ns,
                last_correction_s=self.last_correction_s,
                slew_remaining_s=self.clock.slew_remaining_ns() / NS_PER_S,
                error_bound_s=self.error_bound_s(),
            )
            error_ppm = self.frequency_error_ppm()
            if error_ppm is not None:
                status = replace(
                    status,
                    frequency_ppm=self.clock.frequency_ppm,
                    frequency_error_ppm=min(error_ppm, MAX_PPM),
                )
        return Publish(
            self.topics.status(self.name), self.seal(status.encode()), retain=True, qos=1
        )
