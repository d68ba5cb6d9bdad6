"""The selected candidate: its argument changes against the baseline, its validation
results, and its diff against its parent, syntax-highlighted."""

from __future__ import annotations

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from afr_tui.model import STATUS_STYLE, CandidateView, CockpitModel, placement_text
from afr_tui.widgets.curve import RoundCurve


def arg_changes(candidate: CandidateView, record: dict | None, baseline: dict) -> dict[str, list]:
    if record and record.get("arg_changes"):
        changes = record["arg_changes"]
    else:
        changes = {name: [baseline.get(name), value] for name, value in candidate.args.items()}
    return {name: pair for name, pair in changes.items() if pair[0] != pair[1]}  # only real changes


def describe(
    candidate: CandidateView, model: CockpitModel, record: dict | None = None, diff: str | None = None
) -> Group:
    record = record or {}
    parts: list = []
    head = Text.assemble(
        (candidate.id, "bold"),
        " ",
        (f"[{candidate.status}]", STATUS_STYLE.get(candidate.status, "")),
        " ",
        candidate.description,
    )
    if candidate.score is not None and candidate.status != "literature":
        delta = model.diff_to_best(candidate)
        head.append(f"   score {candidate.score:.4f}")
        if candidate.id == model.best_id:
            head.append(" (the best)", style="bold green")
        elif delta is not None:
            head.append(f" ({delta:+.4f} vs best)")
    parts.append(head)
    changes = arg_changes(candidate, record, model.baseline_args)
    if changes:
        line = Text("args: ", style="bold")
        for index, (name, (old, new)) in enumerate(sorted(changes.items())):
            line.append(("; " if index else "") + f"{name} ")
            line.append(f"{old}", style="red")
            line.append(" → ")
            line.append(f"{new}", style="green")
        parts.append(line)
    elif candidate.status != "literature":
        parts.append(Text("args: baseline", style="dim"))
    checks = candidate.checks or record.get("validation") or {}
    if checks:
        line = Text("validation: ", style="bold")
        for name, result in checks.items():
            ok = result == "ok"
            line.append(f"{name} {'✓' if ok else '✗'}  ", style="green" if ok else "bold red")
        parts.append(line)
        for name, result in checks.items():
            if result != "ok":
                parts.append(Text(f"  {name}: {result}", style="red"))
    where = candidate.node or placement_text(record.get("placement"))
    if where:
        parts.append(Text(f"runs on: Ray node {where}", style="cyan"))
    error = candidate.error or record.get("error")
    if error:
        parts.append(Text(f"reason: {error}", style="dark_orange"))
    note = candidate.note or (record.get("human") or {}).get("note")
    if note:
        parts.append(Text(f"human note: {note}", style="yellow"))
    if candidate.status == "literature":
        parts.append(Text(f"worksheet: {candidate.run_dir}", style="dim"))
    elif diff:
        parts.append(Syntax(diff, "diff", theme="ansi_dark", word_wrap=False, background_color="default"))
    elif diff == "":
        parts.append(Text("no code change: args only", style="dim"))
    else:
        parts.append(Text("loading diff…", style="dim"))
    return Group(*parts)


class DetailView(VerticalScroll):
    DEFAULT_CSS = """
    DetailView { height: 1fr; }
    DetailView > Static { width: auto; min-width: 100%; }
    """

    def compose(self):
        yield RoundCurve(id="curve")  # hidden until a candidate has a round to show
        yield Static("select a candidate", id="detail-body")

    shown = None  # what the pane shows now (tests read it)

    def show(self, renderable) -> None:
        self.shown = renderable
        self.query_one("#detail-body", Static).update(renderable)
