"""The leader's side of a fleet round (see clocksync.nodes.fleet): one tick and one
result for the whole fleet, an answer per ask, and a bounded sample of reports.

The leader answers every ask (a stateless time answer, as a time server's) but hears only
a sample of the fleet's offsets: each fleet node reports with the tick's report share as its
chance, the share set so that about REPORTS_WANTED reports come, from the number that asked
last round.  A fault-tolerant average over a few hundred clocks drawn at random is as good as
over all of them, and it costs the leader a few hundred messages however large the fleet.
Reports are kept for the round they name, one per node, MAX_REPORTS at most.

Standby masters that follow the leader may answer the asks instead (the tick names them,
and the result says how far each was from the leader as the round polled it), so that the
leader's own work per round no longer grows with the fleet.
"""

from collections.abc import Mapping

from clocksync.core.sample import Sample
from clocksync.protocol.messages import FleetReport, FleetResult, FleetServer, FleetTick

REPORTS_WANTED = 256
MAX_REPORTS = 4 * REPORTS_WANTED
MAX_SERVERS = 16
"""Standby masters a tick names at most, so that the result stays one small message."""


def report_share(fleet_size: int) -> float:
    """The chance each fleet node reports, so that about REPORTS_WANTED do."""
    return min(1.0, REPORTS_WANTED / max(1, fleet_size))


class FleetRound:
    """What the fleet did in round `number` of term `epoch`, asking `servers` (the standby
    masters answering for the leader; none: the leader answers)."""

    def __init__(
        self, master: str, epoch: int, number: int, share: float, servers: tuple[str, ...] = ()
    ) -> None:
        self.master = master
        self.epoch = epoch
        self.number = number
        self.share = share
        self.servers = servers
        self.asked = 0
        """Asks the leader answered itself."""
        self.heard = 0
        """Reports for the round, kept or not: with the share, how large the fleet is."""
        self.reports: dict[str, tuple[float, str | None]] = {}
        """Per reporting node, its offset from the clock it asked: the leader's (None) or
        a standby master's, answering for it."""

    def fleet_size(self) -> int:
        """How many fleet nodes took part, as far as the leader can tell: the asks it
        answered, or the reports it heard scaled up by the share (standby masters answer
        the asks it does not see)."""
        return max(self.asked, round(self.heard / self.share))

    def tick(self, settle_s: float, window_s: float) -> FleetTick:
        return FleetTick(
            self.master, self.epoch, self.number, window_s, self.share, settle_s, self.servers
        )

    def add_report(self, report: FleetReport) -> str | None:
        """Keep the offset of a report for this round; return why it was refused, or
        None when kept."""
        self.heard += 1
        if report.node in self.reports:
            return "a second report for the round"
        if report.server is not None and report.server not in self.servers:
            return f"it measured {report.server}, which the round did not ask"
        if len(self.reports) >= MAX_REPORTS:
            return f"more than {MAX_REPORTS} reports in a round"
        self.reports[report.node] = (report.offset_s, report.server)
        return None

    def offsets(self, polled: Mapping[str, Sample]) -> dict[str, float]:
        """Per reporting node, its offset from the leader: a report from a standby's clock
        plus that standby's offset from the leader, as the leader `polled` it in the round
        (the standby answered only while its clock stayed the one polled, see
        clocksync.nodes.berkeley.Follower.refusal_to_answer); left out if it was not
        polled."""
        offsets = {}
        for node, (offset_s, server) in self.reports.items():
            if server is None:
                offsets[node] = offset_s
            elif server in polled:
                offsets[node] = offset_s + polled[server].offset_s
        return offsets

    def result(
        self,
        average_s: float,
        applied: int | None = None,
        slewed: int | None = None,
        *,
        polled: Mapping[str, Sample] | None = None,
        rates_ppm: Mapping[str, float] | None = None,
        steering: tuple[float, float] | None = None,
    ) -> FleetResult:
        """The round's result; it measures each of the round's servers the leader `polled`
        (its best exchange) whose drift bound it knows (`rates_ppm`), and says how the
        leader steers (`steering`: its total adjustment at `applied` with the round's move,
        in seconds, and its frequency correction from now on, in ppm; see FleetResult)."""
        polled, rates_ppm = polled or {}, rates_ppm or {}
        servers = tuple(
            FleetServer(
                name,
                sample.offset_s,
                sample.error_bound_s,
                (sample.exchange.t1 + sample.exchange.t4) // 2,
                rates_ppm[name],
            )
            for name in self.servers
            if name in polled and name in rates_ppm
            for sample in (polled[name],)
        )
        reference_now_s, frequency_ppm = (None, None) if steering is None else steering
        return FleetResult(
            self.master,
            self.epoch,
            self.number,
            average_s,
            applied,
            slewed,
            servers,
            reference_now_s,
            frequency_ppm,
        )
