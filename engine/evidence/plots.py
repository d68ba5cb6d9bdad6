"""Campaign progress plots from ``results.tsv``: a PNG for reports and a text plot for terminals.

The PNG follows the reference's progress plot: one point per experiment coloured by status,
the running best as a step line, the baseline dashed, literature reviews as vertical
markers, and the running-best milestones labelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.store.ledger import ResultRow
from engine.wording import counted

STYLE = {
    "discard": {"color": "#bdbdbd", "s": 18, "alpha": 0.6, "label": "Discarded"},
    "candidate": {"color": "#3498db", "s": 30, "alpha": 0.75, "label": "Candidate"},
    "keep": {"color": "#2ecc71", "s": 70, "alpha": 0.95, "label": "Kept"},
}
CRASH_COLOR = "#e74c3c"
LITERATURE_COLOR = "#8e44ad"
BEST_COLOR = "#1e8449"


X_LABEL = "candidate"  # the x axis everywhere (cockpit, `afr status --plot`, report): 1, 2, 3...


@dataclass(frozen=True)
class Point:
    index: int  # the candidate's number: its place among results.tsv's candidate rows, from 1
    row: ResultRow


def positions(rows: list[ResultRow]) -> list[int]:
    """Each row's x: candidates numbered 1, 2, 3... in ledger order; a literature review sits at
    the number of the candidate that follows it (as the cockpit draws it)."""
    out, number = [], 0
    for row in rows:
        if row.status != "literature":
            number += 1
            out.append(number)
        else:
            out.append(number + 1)
    return out


def scored_points(rows: list[ResultRow]) -> list[Point]:
    return [
        Point(x, r)
        for x, r in zip(positions(rows), rows, strict=True)
        if r.score is not None and r.status not in ("crash", "literature")
    ]


def whole_ticks(last: int, count: int = 8) -> list[int]:
    """Whole-number ticks from 1 to about ``last``."""
    step = max(1, -(-last // count))
    return list(range(1, max(last, 1) + 1, step))


def running_best(values: list[float], maximize: bool = True) -> list[float]:
    best, out = None, []
    for value in values:
        best = value if best is None or (value > best if maximize else value < best) else best
        out.append(best)
    return out


def milestones(rows: list[ResultRow], maximize: bool = True, limit: int = 6) -> list[tuple[Point, float]]:
    """Running-best improvements after the baseline, with their gains; the largest ``limit``,
    always including the final best, in campaign order."""
    points = scored_points(rows)
    found, best = [], None
    for point in points:
        score = point.row.score
        if best is None:
            best = score
            continue
        if (score > best) if maximize else (score < best):
            found.append((point, abs(score - best)))
            best = score
    if len(found) <= limit:
        return found
    final = found[-1]
    chosen = sorted(found[:-1], key=lambda item: item[1], reverse=True)[: limit - 1]
    keep = {id(item) for item in chosen} | {id(final)}
    return [item for item in found if id(item) in keep]


def _label(text: str, limit: int = 30) -> str:
    text = " ".join(text.split())
    for marker in (" (", ";"):
        text = text.split(marker, 1)[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def progress_png(rows: list[ResultRow], output: Path, title: str, maximize: bool = True) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    points = scored_points(rows)
    if not points:
        raise ValueError("no scored candidate to plot yet")
    scores = [p.row.score for p in points]
    baseline = scores[0]
    low, high = min(scores), max(scores)
    span = max(high - low, 0.01)
    y_limits = (low - 0.12 * span, high + 0.25 * span)
    fig, ax = plt.subplots(figsize=(14, 7))
    for status, style in STYLE.items():
        group = [p for p in points if p.row.status == status]
        if group:
            ax.scatter(
                [p.index for p in group],
                [p.row.score for p in group],
                c=style["color"],
                s=style["s"],
                alpha=style["alpha"],
                label=style["label"],
                edgecolors="black" if status == "keep" else "none",
                linewidths=0.5,
                zorder=4 if status == "keep" else 2,
            )
    crashes = [i for i, r in enumerate(rows) if r.status == "crash"]
    if crashes:
        ax.scatter(
            crashes,
            [y_limits[0] + 0.03 * span] * len(crashes),
            marker="x",
            c=CRASH_COLOR,
            s=40,
            label="Crash",
            zorder=3,
        )
    ax.step(
        [p.index for p in points],
        running_best(scores, maximize),
        where="post",
        color=BEST_COLOR,
        linewidth=2.0,
        alpha=0.8,
        label="Running best",
        zorder=3,
    )
    ax.axhline(baseline, color="#7f8c8d", linestyle="--", linewidth=1.2, alpha=0.6, label="Baseline")
    literature = [x for x, r in zip(positions(rows), rows, strict=True) if r.status == "literature"]
    for index in literature:
        ax.axvline(index, color=LITERATURE_COLOR, linestyle=":", linewidth=1.0, alpha=0.5)
    if literature:
        ax.scatter(
            literature,
            [y_limits[1] - 0.04 * span] * len(literature),
            marker="v",
            c=LITERATURE_COLOR,
            s=50,
            label="Literature review",
            zorder=5,
        )
    x_max = max(max(positions(rows), default=1) - 0.5, 1.0)
    for number, (point, _gain) in enumerate(milestones(rows, maximize)):
        near_right = point.index / x_max > 0.7
        ax.annotate(
            f"#{point.index} {point.row.score:.4f}: {_label(point.row.description)}",
            (point.index, point.row.score),
            textcoords="offset points",
            xytext=(-10 if near_right else 10, 12 + 9 * (number % 3)),
            ha="right" if near_right else "left",
            fontsize=8,
            color=BEST_COLOR,
            arrowprops={"arrowstyle": "-", "color": BEST_COLOR, "alpha": 0.4, "linewidth": 0.8},
        )
    best = max(scores) if maximize else min(scores)
    ax.text(
        0.015,
        0.985,
        f"Baseline: {baseline:.4f}\nBest: {best:.4f}\nLift: {best - baseline:+.4f}",
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=9,
        bbox={"boxstyle": "round,pad=0.35", "facecolor": "white", "edgecolor": "#dddddd", "alpha": 0.9},
    )
    kept = sum(r.status == "keep" for r in rows)
    ax.set_title(
        f"{title}: {counted(len(rows) - len(literature), 'candidate')}, {kept} kept, "
        f"{counted(len(crashes), 'crash')}, {counted(len(literature), 'literature review')}",
        fontsize=13,
    )
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("Score (higher is better)" if maximize else "Score (lower is better)")
    ax.set_ylim(*y_limits)
    ax.set_xlim(-0.5, x_max)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(True, alpha=0.2)
    ax.legend(loc="best", fontsize=9)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def terminal_plot(
    rows: list[ResultRow],
    title: str,
    maximize: bool = True,
    width: int = 100,
    height: int = 22,
    color: bool = True,
) -> str:
    """The running-best plot as text (plotext) for ``afr status --plot`` over SSH; plain without ``color``."""
    import plotext as plt

    points = scored_points(rows)
    if not points:
        return "(no scored candidate to plot yet)"
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    scores = [p.row.score for p in points]
    for status, marker in (("discard", "dot"), ("keep", "dot")):
        group = [p for p in points if p.row.status == status]
        if group:
            plt.scatter(
                [p.index for p in group],
                [p.row.score for p in group],
                marker=marker if status == "discard" else "*",
                color="gray" if status == "discard" else "green",
            )
    best = running_best(scores, maximize)
    xs, ys = [], []
    for i, point in enumerate(points):  # a post-step line: hold each best until the next point
        if i:
            xs.append(point.index)
            ys.append(best[i - 1])
        xs.append(point.index)
        ys.append(best[i])
    plt.plot(xs, ys, color="green")
    plt.hline(scores[0], color="blue")
    xs_of_rows = positions(rows)
    for x, row in zip(xs_of_rows, rows, strict=True):
        if row.status == "literature":
            plt.vline(x, color="magenta")
    plt.title(f"{title}: baseline {scores[0]:.4f}, best {best[-1]:.4f}")
    plt.xlabel(f"{X_LABEL}  (* kept, • discarded, flat line: baseline)")
    plt.xticks(whole_ticks(max(xs_of_rows, default=1)))
    text = plt.build()
    plt.clear_figure()
    return text if color else plt.uncolorize(text)
