"""The two header lines: who and where the campaign is, and how well it is doing."""

from __future__ import annotations

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


def header_text(model: CockpitModel, now: float, compact: bool = False) -> Text:
    state = model.display_state()
    style = STATE_STYLE.get(state.split(" ")[0], "bold")
    if model.awaiting and not model.ended:
        state, style = f"awaiting approval ({len(model.awaiting)})", STATE_STYLE["awaiting_approval"]
    elapsed = ((model.ended_at or now) - model.created) if model.created else None
    first = Text.assemble((model.tag or "?", "bold"), "  ")
    if not compact:
        first.append_text(Text.assemble((model.profile, "cyan"), "  ", model.proposer, "  "))
    first.append_text(
        Text.assemble(
            (f" {state} ", f"{style} reverse"),
            f"  {model.done}/{model.cap or '?'}",
            f"  ⏱ {duration(elapsed)}",
            f"  ETA {duration(model.eta_seconds(now))}" if not model.ended else "",
        )
    )
    if model.sandbox:  # where candidate code ran: "none" is the thing a researcher must notice
        first.append(f"  sandbox: {model.sandbox}", style="bold red" if model.sandbox == "none" else "green")
    lift = model.lift()
    second = Text.assemble(
        "baseline ",
        (score(model.baseline), "bold"),
        "  best ",
        (score(model.best_score), "bold green"),
        (f" ({model.best_id})" if model.best_id and not compact else "", "green"),
        "  lift ",
        (f"{lift[0]:+.4f} ({lift[1]:+.1f}%)" if lift else "-", "bold green" if lift and lift[0] else ""),
        f"  {'' if compact else 'approval '}{model.approval}",
        f"  tokens {model.tokens:,}  ${model.cost:.2f}" if model.tokens or model.cost else "",
    )
    if compact:
        second.append(f"  {model.proposer}", style="dim")
    for line in (first, second):
        line.no_wrap = True
        line.overflow = "ellipsis"
    return Text("\n", no_wrap=True, overflow="ellipsis").join([first, second])


class CampaignHeader(Static):
    DEFAULT_CSS = """
    CampaignHeader { height: 2; padding: 0 1; background: $panel; }
    """

    def show(self, model: CockpitModel, now: float, compact: bool = False) -> None:
        self.update(header_text(model, now, compact))
