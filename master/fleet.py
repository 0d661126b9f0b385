"""The leader's side of a fleet round (see clocksync.nodes.fleet): one tick and one
result for the whole fleet, an answer per ask, and a bounded sample of reports.

The leader answers every ask (a stateless time answer, as a time server's) but hears only
a sample of the fleet's offsets: each fleet node reports with the tick's report share as its
chance, the share set so that about REPORTS_WANTED reports come, from the number that asked
last round.  A fault-tolerant average over a few hundred clocks drawn at random is as good as
over all of them, and it costs the leader a few hundred messages however large the fleet.
Reports are kept for the round they name, one per node, MAX_REPORTS at most.
"""

from clocksync.protocol.messages import FleetReport, FleetResult, FleetTick

REPORTS_WANTED = 256
MAX_REPORTS = 4 * REPORTS_WANTED


def report_share(asked_last_round: int) -> float:
    """The chance each fleet node reports, so that about REPORTS_WANTED do."""
    return min(1.0, REPORTS_WANTED / max(1, asked_last_round))


class FleetRound:
    """What the fleet did in round `number` of term `epoch`."""

    def __init__(self, master: str, epoch: int, number: int, share: float) -> None:
        self.master = master
        self.epoch = epoch
        self.number = number
        self.share = share
        self.asked = 0
        self.offsets: dict[str, float] = {}
        """Per reporting node, its offset from the leader."""

    def tick(self, settle_s: float, window_s: float) -> FleetTick:
        return FleetTick(self.master, self.epoch, self.number, window_s, self.share, settle_s)

    def add_report(self, report: FleetReport) -> str | None:
        """Keep the offset of a report for this round; return why it was refused, or
        None when kept."""
        if report.node in self.offsets:
            return "a second report for the round"
        if len(self.offsets) >= MAX_REPORTS:
            return f"more than {MAX_REPORTS} reports in a round"
        self.offsets[report.node] = report.offset_s
        return None

    def result(
        self, average_s: float, applied: int | None = None, slewed: int | None = None
    ) -> FleetResult:
        return FleetResult(self.master, self.epoch, self.number, average_s, applied, slewed)
