"""Where a job's time goes, and its per-round global metric, read from NVFlare's own log lines.

The runner feeds every line of the job's output to a ``PhaseClock`` as it arrives. NVFlare's
FedAvg controller logs ``Round N started.`` and ``Finished FedAvg.``, and its model
selector logs ``validation metric V from client S`` for each training result; from those
the clock derives the phase times and streams one line per round that a cockpit can plot:

    afr: round 7/15                             the 7th training round started
    afr: round 7/15 global accuracy=0.612345 sites=4
                                                mean over the sites of the metric they
                                                reported for the global model that round
                                                started from (the candidate's own claim,
                                                for progress only: never the score).
                                                NVFlare logs no metric in the first round.
    afr: final evaluation                       training finished, final evaluation runs

Lines start with ``afr: `` so they never mix with the job's own output.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

ROUND_STARTED = re.compile(r"\bRound (\d+) started\.")
TRAINING_FINISHED = re.compile(r"\bFinished FedAvg\.")
SITE_METRIC = re.compile(r"validation metric (\S+) from client (\S+)")
PREFIX = "afr: "


@dataclass
class Phases:
    """Seconds per phase of one run; None where the run never reached that phase."""

    # Job start -> NVFlare's server started the first round. The site processes start
    # meanwhile, so the first round's duration includes the rest of their start-up.
    startup_seconds: float | None = None
    rounds_seconds: float | None = None  # first round started -> training finished
    final_eval_seconds: float | None = None  # training finished -> score complete
    rounds_completed: int = 0
    round_seconds: list[float] = field(default_factory=list)  # each completed round, first included
    round_metrics: list[float | None] = field(default_factory=list)  # per completed round; None: no report


class PhaseClock:
    def __init__(self, started: float, num_rounds: int | None, metric: str) -> None:
        self.started = started
        self.num_rounds = num_rounds
        self.metric = metric
        self.round_starts: list[float] = []
        self.finished_training_at: float | None = None
        self.result_at: float | None = None
        self.rounds_started = 0
        self.round_metrics: list[float | None] = []
        self._site_values: dict[str, float] = {}

    def _of_total(self, number: int) -> str:
        return f"{number}/{self.num_rounds}" if self.num_rounds else str(number)

    def feed(self, line: str, now: float) -> list[str]:
        """Take one output line seen at ``now`` (monotonic); return the ``afr:`` lines it completes."""
        if line.startswith(PREFIX):
            return []
        out: list[str] = []
        if match := ROUND_STARTED.search(line):
            out += self._close_round()
            self.rounds_started = int(match.group(1)) + 1
            self.round_starts.append(now)
            out.append(f"{PREFIX}round {self._of_total(self.rounds_started)}")
        elif TRAINING_FINISHED.search(line):
            out += self._close_round()
            self.finished_training_at = now
            out.append(f"{PREFIX}final evaluation")
        elif (
            (match := SITE_METRIC.search(line)) and self.rounds_started and self.finished_training_at is None
        ):
            with contextlib.suppress(ValueError):
                self._site_values[match.group(2)] = float(match.group(1))
        return out

    def _close_round(self) -> list[str]:
        if not self.rounds_started:
            return []
        if not self._site_values:
            self.round_metrics.append(None)
            return []
        value = sum(self._site_values.values()) / len(self._site_values)
        self.round_metrics.append(value)
        line = (
            f"{PREFIX}round {self._of_total(self.rounds_started)} global {self.metric}={value:.6f} "
            f"sites={len(self._site_values)}"
        )
        self._site_values = {}
        return [line]

    def result_complete(self, now: float) -> None:
        if self.result_at is None:
            self.result_at = now

    def phases(self) -> Phases:
        def span(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round(end - start, 3)

        ends = self.round_starts[1:] + ([self.finished_training_at] if self.finished_training_at else [])
        durations = [end - start for start, end in zip(self.round_starts, ends, strict=False)]
        first_round = self.round_starts[0] if self.round_starts else None
        return Phases(
            startup_seconds=span(self.started, first_round),
            rounds_seconds=span(first_round, self.finished_training_at),
            final_eval_seconds=span(self.finished_training_at, self.result_at),
            rounds_completed=len(durations),
            round_seconds=[round(d, 3) for d in durations],
            round_metrics=list(self.round_metrics[: len(durations)]),
        )


ROUND_METRIC_LINE = re.compile(
    rf"^{PREFIX}round (\d+)(?:/(\d+))? global (\S+)=(\S+) sites=(\d+)$"
)


@dataclass(frozen=True)
class RoundMetric:
    """One ``afr: round 7/15 global accuracy=0.612345 sites=4`` line, typed (for the live curve)."""

    round: int
    total: int | None
    metric: str
    value: float
    sites: int

    def as_event(self) -> dict:
        return {"round": self.round, "total": self.total, "metric": self.metric, "value": self.value, "sites": self.sites}


def parse_round_metric(line: str) -> RoundMetric | None:
    """The round metric a ``PhaseClock`` line carries, or None for any other line."""
    match = ROUND_METRIC_LINE.match(line)
    if not match:
        return None
    try:
        value = float(match.group(4))
    except ValueError:
        return None
    total = int(match.group(2)) if match.group(2) else None
    return RoundMetric(int(match.group(1)), total, match.group(3), value, int(match.group(5)))
