"""The running-best plot: every reviewed candidate as a point coloured by status, the
running-best step line, the baseline, and literature reviews as vertical markers."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from afr_tui.model import CockpitModel
from engine.evidence.plots import X_LABEL, whole_ticks

POINT_COLOURS = {"keep": "green", "discard": "gray", "crash": "red", "candidate": "blue"}
MAX_POINTS = 600  # plotext draws every point it is given; thin the dull ones beyond this


def running_best(
    points: list[tuple[int, float | None, str]], maximize: bool
) -> tuple[list[int], list[float]]:
    """Vertices of the best-kept-score step line: one pair per improvement, and the last x."""
    xs, ys, best = [], [], None
    for x, score, status in points:
        if status == "keep" and score is not None and (best is None or (score > best) == maximize):
            if best is not None:
                xs.append(x)
                ys.append(best)
            best = score
            xs.append(x)
            ys.append(best)
    if xs and points[-1][0] != xs[-1]:
        xs.append(points[-1][0])
        ys.append(ys[-1])
    return xs, ys


def thin(points: list[tuple[int, float | None, str]]) -> list[tuple[int, float | None, str]]:
    if len(points) <= MAX_POINTS:
        return points
    kept = [p for p in points if p[2] != "discard"]
    others = [p for p in points if p[2] == "discard"]
    step = max(1, len(others) // max(1, MAX_POINTS - len(kept)))
    return sorted(kept + others[::step])


MIN_SPAN = 0.02  # the smallest score range the y axis shows


class ProgressPlot(PlotextPlot):
    DEFAULT_CSS = """
    ProgressPlot { height: 1fr; min-height: 8; }
    """

    def draw(self, model: CockpitModel) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("running best")
        points = model.points
        scored = [p for p in points if p[1] is not None and p[2] != "crash"]
        if not scored:
            plt.title("running best (no scores yet)")
            self.refresh()
            return
        low = min(p[1] for p in scored)
        for status, colour in POINT_COLOURS.items():
            chosen = [p for p in thin(points) if p[2] == status]
            if chosen:
                ys = [low if status == "crash" or p[1] is None else p[1] for p in chosen]
                plt.scatter(
                    [p[0] for p in chosen], ys, color=colour, marker="x" if status == "crash" else "dot"
                )
        xs, ys = running_best(points, model.maximize)
        if xs:
            plt.plot(xs, ys, color="green")
        if model.baseline is not None:
            plt.hline(model.baseline, "blue")
        for x in model.literature_marks:
            plt.vline(x, "magenta")
        high = max(p[1] for p in scored)
        if high - low < MIN_SPAN:  # one score (or all equal): plotext would label 1e-9 steps
            middle = (high + low) / 2
            plt.ylim(middle - MIN_SPAN / 2, middle + MIN_SPAN / 2)
        plt.xlabel(X_LABEL)
        plt.xticks(whole_ticks(max(p[0] for p in points)))  # 1, 2, 3...: never 2.5
        self.refresh()
