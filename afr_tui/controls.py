"""The cockpit's controls: every key a human steers the campaign with, as actions of the app.

Each control is a binding with a stable id (``cockpit.<action>``), shown in the footer and in
the command palette; sending a command never blocks the UI (``_send`` is a thread worker).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import work
from textual.app import SystemCommand
from textual.screen import Screen
from textual.widgets import Input

from afr_tui.link import LinkError
from afr_tui.messages import CommandFailed
from afr_tui.screens import ChoiceModal, HelpScreen, TextPrompt
from afr_tui.widgets.table import CandidateTable
from engine.control.events import Command, CommandType

PANES = ("detail", "log", "plot", "system")
# (key, action, footer label, help text, shown in the footer): the controls, with stable ids.
CONTROLS = [
    ("space", "toggle_pause", "Pause", "pause after the running candidate, or resume", True),
    (
        "a",
        "approve",
        "Approve",
        "approve the candidate awaiting approval (Enter on its row reopens its modal)",
        True,
    ),
    ("r", "reject", "Reject", "reject the awaiting candidate, with a note the agent sees", True),
    ("l", "literature", "Lit", "force a literature review before the next candidate", True),
    ("m", "approval_mode", "Mode", "switch approval between auto and manual", True),
    ("k", "override", "Override", "override the selected candidate: keep <-> discard", True),
    ("n", "note", "Note", "send a note to the agent", True),
    ("s", "stop", "Stop", "stop the campaign after the running candidate (asks first)", True),
    ("q", "quit_prompt", "Quit", "quit: stop the campaign, or leave it running", True),
    ("question_mark", "help", "Help", "show the keys", True),
    ("j", "jump_running", "Running", "select the running candidate", False),
    ("slash", "filter", "Filter", "filter rows: status words (keep, crash...) and text", False),
    ("f", "status_filter", "Status", "cycle the status filter", False),
    ("o", "sort", "Sort", "cycle the sort column (click a header, or press again to reverse)", False),
    ("v", "cycle_pane", "View", "compact layout: cycle details, log, plot, system", False),
]
KEY_NAMES = {"space": "␣", "question_mark": "?", "slash": "/"}  # in the footer
HELP_KEYS = {"space": "space", "question_mark": "?", "slash": "/"}


class Controls:
    """Mixed into ``CockpitApp``: the actions behind ``CONTROLS``."""

    def action_toggle_pause(self) -> None:
        if self.model.paused:
            self._send(Command(CommandType.RESUME), "resumed")
        else:
            self._send(
                Command(CommandType.PAUSE, note="paused from the cockpit"),
                "pausing after the running candidate",
            )

    def _first_awaiting(self) -> str | None:
        if not self.model.awaiting:
            self.notify("no candidate is awaiting approval", timeout=3)
            return None
        return next(iter(self.model.awaiting))

    def action_approve(self) -> None:
        cid = self._first_awaiting()
        if cid:
            self._send(Command(CommandType.APPROVE, candidate=cid), f"{cid} approved")

    def action_reject(self) -> None:
        cid = self._first_awaiting()
        if cid:
            self._ask_reject(cid)

    def action_literature(self) -> None:
        self._send(Command(CommandType.FORCE_LITERATURE), "literature review requested")

    def action_approval_mode(self) -> None:
        mode = "auto" if self.model.approval == "manual" else "manual"
        self.deferred.clear()
        self._send(Command(CommandType.SET_APPROVAL, value=mode), f"approval: {mode}")

    def action_override(self) -> None:
        cid = self.query_one("#table", CandidateTable).selected_id()
        candidate = self.model.candidates.get(cid or "")
        if candidate is None or candidate.status not in ("keep", "discard"):
            self.notify("select a kept or discarded candidate to override", timeout=3)
            return
        status = "discard" if candidate.status == "keep" else "keep"

        def send(note: str | None) -> None:
            if note is not None:
                command = Command(CommandType.OVERRIDE, candidate=cid, value=status, note=note)
                self._send(command, f"{cid}: {status} (override)")

        self.push_screen(
            TextPrompt(f"Mark {cid} as {status}? Why:", "reason (optional)", allow_empty=True), send
        )

    def action_note(self) -> None:
        def send(note: str | None) -> None:
            if note:
                self._send(Command(CommandType.NOTE, note=note), "note sent to the agent")

        self.push_screen(TextPrompt("Note to the agent", "e.g. try FedProx with mu 0.01"), send)

    def action_stop(self) -> None:
        def answer(choice: str | None) -> None:
            if choice == "stop":
                self._send(Command(CommandType.STOP, note="stopped from the cockpit"), "stopping")

        question = "Stop the campaign? It stops after the running candidate."
        self.push_screen(ChoiceModal(question, [("y", "stop", "Stop", "error")]), answer)

    def action_quit_prompt(self) -> None:
        if self._nothing_to_leave():
            self.exit("ended")
            return

        def answer(choice: str | None) -> None:
            if choice in ("stop", "leave") and self._nothing_to_leave():
                self.exit("ended")  # it ended while the question was up: nothing to stop or leave
            elif choice == "stop":
                self._stop_and_exit()
            elif choice == "leave":
                self.exit("left")

        choices = [("s", "stop", "Stop the campaign", "error"), ("l", "leave", "Leave it running", "primary")]
        self.push_screen(ChoiceModal("Quit the cockpit:", choices), answer)

    def _nothing_to_leave(self) -> bool:
        return bool(self.model.ended) or self.model.state == "engine gone"

    @work(thread=True, group="command", exit_on_error=False)
    def _stop_and_exit(self) -> None:
        try:
            self.link.send(Command(CommandType.STOP, note="stopped when quitting the cockpit"))
        except LinkError as error:
            self.post_message(CommandFailed(str(error)))
            return
        self.call_from_thread(self.exit, "stopped")

    async def action_quit(self) -> None:
        self.action_quit_prompt()

    def action_help(self) -> None:
        controls = [(HELP_KEYS.get(key, key), label, text) for key, _, label, text, _ in CONTROLS]
        self.push_screen(HelpScreen(controls))

    def action_jump_running(self) -> None:
        if not self.model.running:
            self.notify("no candidate is running", timeout=3)
            return
        table = self.query_one("#table", CandidateTable)
        cid = self.model.running[-1]
        if not table.select(cid):
            table.text_filter, table.status_filter = "", None
            self.query_one("#filter", Input).value = ""
            table.sync(self.model)
            table.select(cid)
        table.focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_focus_table(self) -> None:
        """Escape: back to the table; from the filter, clearing it (Enter keeps it)."""
        field = self.query_one("#filter", Input)
        if field.has_focus:
            field.value = ""
        self.query_one("#table", CandidateTable).focus()

    def action_status_filter(self) -> None:
        table = self.query_one("#table", CandidateTable)
        table.cycle_status()
        table.sync(self.model)

    def action_sort(self) -> None:
        table = self.query_one("#table", CandidateTable)
        table.cycle_sort()
        table.sync(self.model)

    def action_cycle_pane(self) -> None:
        self.pane = (self.pane + 1) % len(PANES)
        for index, name in enumerate(PANES):
            self.query_one(f"#{name}").set_class(index == self.pane, "shown")
        self._redraw_plot(force=True)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, action, label, help_text, _ in CONTROLS:
            method = getattr(self, f"action_{action}")
            yield SystemCommand(f"{label} ({HELP_KEYS.get(key, key)})", help_text, method)
