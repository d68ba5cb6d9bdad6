"""The two header lines: who and where the campaign is, and how well it is doing."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from afr_tui.model import CockpitModel

STATE_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "awaiting_approval": "bold yellow",
    "literature": "bold medium_purple1",
    "stopping": "bold dark_orange",
    "stopped": "bold red",
    "finished": "bold cyan",
    "engine": "bold red",  # engine gone
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@dataclass
class Field:
    """One header field. ``priority`` 0 is never dropped; higher numbers go first when space is short.
    A ``shrink`` field (the tag, the state) is cut with an ellipsis, not dropped, down to ``MIN_SHRUNK``."""

    text: Text
    priority: int = 0
    shrink: bool = False


SEPARATOR = "  "
MIN_SHRUNK = 12
CUT_BEFORE = 3  # fields of this priority and below keep their place by cutting the tag and state first


def fit(fields: list[Field], width: int | None) -> Text:
    """The fields joined by two spaces, within ``width`` cells: the least important fields are left
    out whole and the shrinkable ones are cut, so two fields never run into each other. The
    nice-to-have fields (priority >= CUT_BEFORE) go first, then the tag and state are cut (down to
    MIN_SHRUNK cells), and only then do the other fields go, least important first."""
    fields = [Field(f.text, f.priority, f.shrink) for f in fields if f.text.cell_len]  # the caller's stay whole
    if width is not None:

        def excess() -> int:
            used = sum(f.text.cell_len for f in fields) + len(SEPARATOR) * max(0, len(fields) - 1)
            return used - width

        def room_by_cutting() -> int:
            return sum(max(0, f.text.cell_len - MIN_SHRUNK) for f in fields if f.shrink)

        while excess() > 0 and any(f.priority for f in fields):
            worst = max(f.priority for f in fields)
            if worst < CUT_BEFORE and excess() <= room_by_cutting():
                break
            fields.remove(next(f for f in reversed(fields) if f.priority == worst))
        for field_ in sorted((f for f in fields if f.shrink), key=lambda f: -f.text.cell_len):
            over = excess()
            if over <= 0:
                break
            keep = max(MIN_SHRUNK, field_.text.cell_len - over)
            if keep < field_.text.cell_len:
                field_.text = field_.text.copy()
                field_.text.truncate(keep, overflow="ellipsis")
    line = Text(SEPARATOR).join(f.text for f in fields)
    line.no_wrap = True
    line.overflow = "ellipsis"  # a last resort on a very narrow terminal
    return line


def slots_field(model: CockpitModel) -> Text:
    """``▶ 2/4 gpu0,1``: running candidates of the campaign's slots, and the GPUs they own."""
    width = max(1, int(model.options.get("parallel") or 1))
    gpus = sorted(model.gpu_owners(), key=lambda g: (len(g), g))
    if not model.running or (width == 1 and not gpus):  # one CPU slot: its row says it all
        return Text()
    return Text(f"▶ {len(model.running)}/{max(width, len(model.running))}" + (f" gpu{','.join(gpus)}" if gpus else ""))


def header_text(model: CockpitModel, now: float, compact: bool = False, width: int | None = None) -> Text:
    """The two header lines, each fitted to ``width`` cells (None: as long as they are)."""
    state = model.display_state()
    style = STATE_STYLE.get(state.split(" ")[0], "bold")
    if model.awaiting and not model.ended:
        state, style = f"awaiting approval ({len(model.awaiting)})", STATE_STYLE["awaiting_approval"]
    elapsed = ((model.ended_at or now) - model.created) if model.created else None
    first = [
        Field(Text(model.tag or "?", style="bold"), shrink=True),
        Field(Text("" if compact else model.profile, style="cyan"), 5),
        Field(Text("" if compact else model.proposer), 6),
        Field(Text(f" {state} ", style=f"{style} reverse"), shrink=True),
        Field(Text(f"{model.done}/{model.cap or '?'}"), 1),
        Field(slots_field(model), 2),
        Field(Text(f"⏱ {duration(elapsed)}"), 3),
        Field(Text("" if model.ended else f"ETA {duration(model.eta_seconds(now))}"), 4),
    ]
    lift = model.lift()
    best = Text.assemble("best ", (score(model.best_score), "bold green"))
    if model.best_id and not compact:
        best.append(f" ({model.best_id})", style="green")
    sandbox = getattr(model, "sandbox", "")  # the run sandbox, where the model knows it
    second = [
        Field(Text.assemble("baseline ", (score(model.baseline), "bold")), 1),
        Field(best),
        Field(
            Text.assemble(
                "lift ",
                (f"{lift[0]:+.4f} ({lift[1]:+.1f}%)" if lift else "-", "bold green" if lift and lift[0] else ""),
            ),
            1,
        ),
        Field(Text(f"{'' if compact else 'approval '}{model.approval}"), 2),
        # Where candidate code ran: "none" is the thing a researcher must notice.
        Field(Text(f"sandbox: {sandbox}" if sandbox else "", style="bold red" if sandbox == "none" else "green"), 2),
        Field(Text(f"tokens {model.tokens:,}  ${model.cost:.2f}" if model.tokens or model.cost else ""), 4),
        Field(Text(model.proposer if compact else "", style="dim"), 5),
    ]
    return Text("\n", no_wrap=True, overflow="ellipsis").join([fit(first, width), fit(second, width)])


class CampaignHeader(Static):
    DEFAULT_CSS = """
    CampaignHeader { height: 2; padding: 0 1; background: $panel; }
    """

    def show(self, model: CockpitModel, now: float, compact: bool = False) -> None:
        width = self.content_size.width or max(0, self.app.size.width - 2)  # inside the padding
        self.update(header_text(model, now, compact, width or None))
