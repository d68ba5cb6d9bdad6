"""Modal screens: approving a candidate, typing a note, confirming a stop, quitting, help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from afr_tui.model import STATUS_STYLE


class ApprovalModal(ModalScreen[str | None]):
    """Manual approval: the candidate's diff, args and validation, and the decision."""

    BINDINGS = [
        Binding("a", "decide('approve')", "Approve", id="approval.approve"),
        Binding("r", "decide('reject')", "Reject…", id="approval.reject"),
        Binding("escape", "decide(None)", "Later", id="approval.later"),
        # A modal screen hides the app's bindings; these controls still make sense while deciding.
        Binding("m", "app.approval_mode", "Approval mode", show=False, id="approval.mode"),
        Binding("s", "app.stop", "Stop", show=False, id="approval.stop"),
        Binding("space", "app.toggle_pause", "Pause", show=False, id="approval.pause"),
        Binding("l", "app.literature", "Literature", show=False, id="approval.literature"),
        Binding("n", "app.note", "Note", show=False, id="approval.note"),
        Binding("q", "app.quit_prompt", "Quit", show=False, id="approval.quit"),
        Binding("question_mark", "app.help", "Help", show=False, id="approval.help"),
    ]

    def __init__(self, cid: str, body) -> None:
        super().__init__()
        self.cid = cid
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Label(f"{self.cid} awaits your approval", classes="title")
            with VerticalScroll():
                yield Static(self.body, id="approval-body")
            with Horizontal():
                yield Button("Approve (a)", variant="success", id="approve")
                yield Button("Reject (r)", variant="error", id="reject")
                yield Button("Later (esc)", id="later")
            yield Label("m: approve automatically from now on · s: stop · q: quit", classes="hint")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "later" else event.button.id)

    def action_decide(self, decision: str | None) -> None:
        self.dismiss(decision)


class TextPrompt(ModalScreen[str | None]):
    """One line of text (a rejection reason, a note to the agent); Enter sends, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, title: str, placeholder: str = "", allow_empty: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.allow_empty = allow_empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Label(self.title_text, classes="title")
            yield Input(placeholder=self.placeholder, id="prompt-input")
            yield Label("Enter to send, Escape to cancel", classes="title")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text or self.allow_empty:
            self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceModal(ModalScreen[str | None]):
    """A question with a few answers, each on a key (stop confirmation, quit)."""

    def __init__(self, question: str, choices: list[tuple[str, str, str, str]]) -> None:
        """``choices``: (key, answer, label, button variant); Escape always cancels."""
        super().__init__()
        self.question = question
        self.choices = choices
        for key, answer, _, _ in choices:
            self._bindings.bind(key, f"choose('{answer}')", show=False)
        self._bindings.bind("escape", "choose('')", show=False)

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Label(self.question, classes="title")
            with Horizontal():
                for key, answer, label, variant in self.choices:
                    yield Button(f"{label} ({key})", variant=variant, id=f"choice-{answer}")
                yield Button("Cancel (esc)", id="choice-")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose((event.button.id or "").removeprefix("choice-"))

    def action_choose(self, answer: str) -> None:
        self.dismiss(answer or None)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss(None)", "Close", id="help.close"),
    ]

    def __init__(self, controls: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.controls = controls

    def compose(self) -> ComposeResult:
        keys = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        for key, description, help_text in self.controls:
            keys.add_row(Text(key, style="bold cyan"), Text(description, style="bold"), help_text)
        legend = Text("statuses: ")
        for status, style in STATUS_STYLE.items():
            legend.append(status, style=style)
            legend.append("  ")
        with Vertical(classes="modal"):
            yield Label("afr cockpit: keys", classes="title")
            with VerticalScroll():
                yield Static(keys)
                yield Static(legend)
                yield Static(
                    Text(
                        "★ marks the best candidate, ▶ the running one. Quitting asks whether to stop "
                        "the campaign or leave it running; `afr attach` reopens the cockpit.",
                        style="dim",
                    )
                )
