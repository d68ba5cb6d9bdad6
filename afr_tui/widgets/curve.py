"""The live curve: a candidate's per-round global metric, drawn as its rounds arrive.

A running candidate's points come from the engine's ``candidate_round`` events (the runner
reads them from NVFlare's log, engine/run/phases.py); a finished one's from its record's
``round_metrics``. They are the sites' own reports on the global model, for progress only:
the score of record is the trusted evaluator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

from afr_tui.model import CockpitModel
from engine.evidence.plots import whole_ticks

MIN_SPAN = 0.01  # the smallest metric range the y axis shows


@dataclass(frozen=True)
class CurveView:
    cid: str
    metric: str
    points: list[tuple[int, float]]  # (round, value)
    total: int | None  # the budget's rounds, where known
    live: bool  # the candidate is still running


def record_points(record: dict | None) -> list[tuple[int, float]]:
    """(round, value) from a record's ``round_metrics`` (round i+1 at index i; None: no report)."""
    values = (record or {}).get("round_metrics") or []
    return [(index + 1, float(v)) for index, v in enumerate(values) if isinstance(v, (int, float))]


def curve_for(model: CockpitModel, selected: str | None, record: dict | None = None) -> CurveView | None:
    """The selected candidate's curve if it has one, else the latest running candidate's, else None."""
    candidate = model.candidates.get(selected or "")
    if candidate is not None:
        live = candidate.status == "running"
        points = candidate.curve or ([] if live else record_points(record))
        if points:
            return CurveView(candidate.id, model.metric or "metric", points, candidate.rounds_total, live)
    for cid in reversed(model.running):
        running = model.candidates.get(cid)
        if running is not None and running.curve:
            return CurveView(cid, model.metric or "metric", running.curve, running.rounds_total, True)
    return None


class RoundCurve(PlotextPlot):
    DEFAULT_CSS = """
    RoundCurve { height: 10; display: none; }
    """

    shown: CurveView | None = None  # what it draws now (tests read it)

    def draw(self, view: CurveView | None) -> None:
        self.shown = view
        self.display = view is not None
        if view is None:
            return
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        state = "live" if view.live else "done"
        plt.title(f"{view.cid} global {view.metric} per round ({state})")
        xs = [x for x, _ in view.points]
        ys = [y for _, y in view.points]
        plt.plot(xs, ys, color="cyan", marker="dot")
        low, high = min(ys), max(ys)
        if high - low < MIN_SPAN:  # one point, or a flat curve: keep plotext off 1e-9 ticks
            middle = (high + low) / 2
            plt.ylim(middle - MIN_SPAN / 2, middle + MIN_SPAN / 2)
        last = max(view.total or 0, xs[-1])
        plt.xlim(1, max(last, 2))
        plt.xticks(whole_ticks(last, count=6))  # rounds are whole numbers
        plt.xlabel("round")
        self.refresh()
