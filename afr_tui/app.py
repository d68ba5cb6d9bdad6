"""The cockpit app: composes the widgets, folds engine events into the model, sends commands.

Everything that can block (reading the journal, git diffs, the ledger, NVML, the control
socket) runs in thread workers that post typed messages; the UI thread only folds small
event batches and redraws what they changed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Input
from textual.worker import get_current_worker

from afr_tui import loaders
from afr_tui.controls import CONTROLS, KEY_NAMES, Controls
from afr_tui.link import Link, LinkError
from afr_tui.messages import (
    CommandFailed,
    DetailReady,
    EngineGone,
    EventsArrived,
    LogLines,
    ModelLoaded,
    SampleReady,
)
from afr_tui.model import Changes, CockpitModel
from afr_tui.screens import ApprovalModal, TextPrompt
from afr_tui.widgets.curve import RoundCurve, curve_for
from afr_tui.widgets.detail import DetailView, describe
from afr_tui.widgets.header import CampaignHeader
from afr_tui.widgets.logpane import LogPane
from afr_tui.widgets.plot import ProgressPlot
from afr_tui.widgets.system_panel import SystemPanel
from afr_tui.widgets.table import CandidateTable
from engine.control.events import Command, CommandType
from engine.control.server import LOG_NAME
from engine.control.telemetry import SystemSampler

COMPACT_WIDTH, COMPACT_HEIGHT = 100, 30
DETAIL_CACHE = 200


def while_mounted(handler):
    """Messages from workers can land while the app is closing and its widgets are gone."""

    @wraps(handler)
    def guarded(self, message):
        with contextlib.suppress(NoMatches):  # queries go to the default screen: gone only at exit
            handler(self, message)

    return guarded


class CockpitApp(Controls, App[str | None]):
    TITLE = "afr cockpit"
    CSS_PATH = "cockpit.tcss"
    BINDINGS = [
        Binding(
            key,
            action,
            label,
            show=shown,
            id=f"cockpit.{action}",
            tooltip=help_text,
            key_display=KEY_NAMES.get(key),
        )
        for key, action, label, help_text, shown in CONTROLS
    ] + [Binding("escape", "focus_table", show=False, id="cockpit.focus_table")]

    def __init__(
        self,
        link: Link,
        clock: Callable[[], float] = time.time,
        sampler=None,
        sample_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.link = link
        self.clock = clock
        self.sampler = sampler
        self.sample_seconds = sample_seconds
        self.model = CockpitModel()
        self.loaded = False
        self.deferred: set[str] = set()  # awaiting candidates the human said "later" to
        self.detail_cache: dict[str, tuple[dict | None, str | None]] = {}
        self.pane = 0
        self.shown_seq = 0  # the last event whose effect is on screen (benchmarks read it)
        self.on_shown: Callable[[int], None] | None = None
        self._plot_dirty = False
        self._curve_dirty = False

    # -- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield CampaignHeader(id="header")
        yield Input(placeholder="/ filter: keep, crash, rejected… or any text", id="filter")
        with Grid(id="body"):
            yield CandidateTable(id="table", classes="box")
            yield ProgressPlot(id="plot", classes="box pane")
            yield DetailView(id="detail", classes="box pane shown")
            yield LogPane(id="log", classes="box pane")
            yield SystemPanel(id="system", classes="box pane")
        yield Footer()

    def on_mount(self) -> None:
        for name, title in (
            ("table", "candidates"),
            ("plot", "progress"),
            ("detail", "candidate"),
            ("log", "log"),
            ("system", "system"),
        ):
            self.query_one(f"#{name}").border_title = title
        self.query_one("#header", CampaignHeader).update("loading the campaign…")
        self.query_one("#table", CandidateTable).focus()
        self._layout(self.size.width, self.size.height)
        self._follow()
        self._sample()
        self.set_interval(1.0, self._tick)
        self.set_interval(0.5, self._redraw_plot)

    def on_resize(self, event) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        self.set_class(compact, "compact")
        footer = self.query_one(Footer)
        if footer.show_command_palette == compact:  # no room for it at 80 columns
            footer.compact = compact
            footer.show_command_palette = not compact
            footer.refresh(recompose=True)
        self._draw_header()
        if not compact:
            self._plot_dirty = True

    @property
    def compact(self) -> bool:
        return self.has_class("compact")

    # -- workers ----------------------------------------------------------------------------------

    @work(thread=True, group="follow", exit_on_error=False)
    def _follow(self) -> None:
        worker = get_current_worker()
        model = loaders.initial_model(self.link)
        self.post_message(ModelLoaded(model))
        last_check = time.monotonic()
        while not worker.is_cancelled:
            events = self.link.wait(0.25)
            if events:
                self.post_message(EventsArrived(events))
            if time.monotonic() - last_check > 2.0:
                last_check = time.monotonic()
                if not self.link.alive():
                    self.post_message(EngineGone())

    @work(thread=True, group="sample", exit_on_error=False)
    def _sample(self) -> None:
        worker = get_current_worker()
        sampler = self.sampler or SystemSampler(self.link.engine_pid())
        while not worker.is_cancelled:
            self.post_message(SampleReady(sampler.sample()))
            for _ in range(int(self.sample_seconds / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    @work(thread=True, group="detail", exclusive=True, exit_on_error=False)
    def _load_detail(self, cid: str, parent: str | None, commit: str | None) -> None:
        record = loaders.record(self.link.directory, cid)
        diff = loaders.diff(self.link.root, parent or record.get("parent"), commit or record.get("commit"))
        self.post_message(DetailReady(cid, record, diff))

    @work(thread=True, group="log", exclusive=True, exit_on_error=False)
    def _tail(self, cid: str, path: Path) -> None:
        worker = get_current_worker()
        for lines in loaders.tail(path, lambda: worker.is_cancelled):
            self.post_message(LogLines(cid, lines))

    @work(thread=True, group="command", exit_on_error=False)
    def _send(self, command: Command, done: str = "") -> None:
        try:
            self.link.send(command)
        except LinkError as error:
            self.post_message(CommandFailed(str(error)))
            return
        if done:
            self.call_from_thread(self.notify, done, timeout=3)

    # -- messages ---------------------------------------------------------------------------------

    @while_mounted
    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.model = message.model
        self.loaded = True
        self._apply_changes(Changes(header=True, plot=True, best=True, awaiting=True), toasts=False)
        self._redraw_plot(force=True)

    @while_mounted
    def on_events_arrived(self, message: EventsArrived) -> None:
        if not self.loaded:
            return
        self._apply_changes(self.model.apply_all(message.events))

    def _apply_changes(self, changes: Changes, toasts: bool = True) -> None:
        table = self.query_one("#table", CandidateTable)
        table.sync(self.model, None if changes.best else changes.rows)  # a new best moves every Δbest
        self._draw_header()
        if changes.plot:
            self._plot_dirty = True
        if changes.curves:
            self._curve_dirty = True  # drawn by the redraw timer, at most twice a second
        for cid, line in changes.log:
            if cid == self.query_one("#log", LogPane).following and not self._tailing_file(cid):
                self.query_one("#log", LogPane).add([line])
        self._follow_running()
        selected = table.selected_id()
        if selected and (selected in changes.rows or changes.best):
            self._show_detail(selected, reload=selected in changes.rows)
        if toasts:
            for notice in changes.notices:
                self.notify(notice.message, title=notice.title, severity=notice.severity, timeout=6)
        if changes.awaiting:
            self._sync_approval()
        self.shown_seq = self.model.last_seq
        if self.on_shown:
            self.call_after_refresh(self.on_shown, self.shown_seq)

    @while_mounted
    def on_detail_ready(self, message: DetailReady) -> None:
        if len(self.detail_cache) >= DETAIL_CACHE:
            self.detail_cache.pop(next(iter(self.detail_cache)))  # the oldest: diffs can be large
        self.detail_cache[message.cid] = (message.record, message.diff)
        if self.query_one("#table", CandidateTable).selected_id() == message.cid:
            self._show_detail(message.cid)

    @while_mounted
    def on_log_lines(self, message: LogLines) -> None:
        log = self.query_one("#log", LogPane)
        if message.cid == log.following:
            log.add(message.lines)

    @while_mounted
    def on_sample_ready(self, message: SampleReady) -> None:
        panel = self.query_one("#system", SystemPanel)
        panel.border_title = f"GPU ({len(message.sample.gpus)})" if message.sample.gpus else "system (no GPU)"
        panel.show(message.sample, self.model.gpu_owners())

    def on_engine_gone(self, message: EngineGone) -> None:
        if not self.model.ended and self.model.state != "engine gone":
            self.model.state = "engine gone"
            self.model.awaiting.clear()  # nobody is left to approve them
            self._sync_approval()
            self._draw_header()
            last = loaders.last_line(self.link.directory / LOG_NAME)
            self.notify(
                (f"its last words: {last}\n" if last else "")
                + f"the engine is not running; continue with `afr resume {self.model.tag}`",
                title="Engine gone",
                severity="error",
                timeout=10,
            )
            self.workers.cancel_group(self, "follow")

    def on_command_failed(self, message: CommandFailed) -> None:
        self.notify(message.text, title="Command refused", severity="error", timeout=6)

    @while_mounted
    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        if message.row_key is not None and message.row_key.value:
            self._show_detail(message.row_key.value)

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        """Enter on a candidate awaiting approval reopens its modal (after "Later")."""
        cid = message.row_key.value if message.row_key is not None else None
        if cid in self.model.awaiting and len(self.screen_stack) == 1:
            self.deferred.discard(cid)
            self._open_approval(cid)

    def on_data_table_header_selected(self, message: DataTable.HeaderSelected) -> None:
        table = self.query_one("#table", CandidateTable)
        table.sort_on(str(message.column_key.value))
        table.sync(self.model)

    def on_input_changed(self, message: Input.Changed) -> None:
        if message.input.id == "filter":
            table = self.query_one("#table", CandidateTable)
            table.text_filter = message.value
            table.sync(self.model)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id == "filter":
            self.query_one("#table", CandidateTable).focus()

    # -- drawing ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        with contextlib.suppress(NoMatches):  # a tick can land while the app closes and its widgets go
            self._draw_header()

    def _draw_header(self) -> None:
        if self.loaded:
            self.query_one("#header", CampaignHeader).show(self.model, self.clock(), self.compact)

    def _redraw_plot(self, force: bool = False) -> None:
        try:
            plot = self.query_one("#plot", ProgressPlot)
        except NoMatches:  # the redraw timer can fire while the app closes and its widgets go
            return
        if (self._plot_dirty or force) and self.loaded and plot.display:
            self._plot_dirty = False
            plot.draw(self.model)
        if self._curve_dirty and self.loaded:
            self._draw_curve()

    def _draw_curve(self) -> None:
        """The selected candidate's per-round curve, else the running one's (hidden when none)."""
        self._curve_dirty = False
        selected = self.query_one("#table", CandidateTable).selected_id()
        cached = self.detail_cache.get(selected or "")
        self.query_one("#curve", RoundCurve).draw(curve_for(self.model, selected, cached[0] if cached else None))

    def _show_detail(self, cid: str, reload: bool = False) -> None:
        candidate = self.model.candidates.get(cid)
        if candidate is None:
            return
        if reload:
            self.detail_cache.pop(cid, None)
        cached = self.detail_cache.get(cid)
        diff = candidate.diff if candidate.diff is not None else (cached[1] if cached else None)
        record = cached[0] if cached else None
        if candidate.status in ("rejected", "literature") and cached and diff is None:
            diff = ""
        self.query_one("#detail", DetailView).show(describe(candidate, self.model, record, diff))
        self.query_one("#detail", DetailView).border_title = f"candidate {cid}"
        self._draw_curve()
        if cached is None and candidate.status != "literature":
            self._load_detail(cid, candidate.parent, candidate.commit)

    def _tailing_file(self, cid: str) -> bool:
        candidate = self.model.candidates.get(cid)
        return bool(candidate and candidate.run_dir and (Path(candidate.run_dir) / "job.log").exists())

    def _follow_running(self) -> None:
        log = self.query_one("#log", LogPane)
        running = self.model.running[-1] if self.model.running else None
        if running and running != log.following:
            log.follow(running)
            candidate = self.model.candidates[running]
            if candidate.run_dir:
                self._tail(running, Path(candidate.run_dir) / "job.log")

    def _sync_approval(self) -> None:
        """Open the approval modal for the first awaiting candidate; close it once decided elsewhere."""
        top = self.screen
        if isinstance(top, ApprovalModal) and top.cid not in self.model.awaiting:
            top.dismiss(None)
            # The next candidate may already wait (same batch of events): look again once the
            # modal is gone, or its modal would only open on the next awaiting event.
            self.call_after_refresh(self._sync_approval)
            return
        if any(isinstance(screen, ApprovalModal) for screen in self.screen_stack):
            return
        waiting = [cid for cid in self.model.awaiting if cid not in self.deferred]
        if waiting and len(self.screen_stack) == 1:
            self._open_approval(waiting[0])

    def _open_approval(self, cid: str) -> None:
        candidate = self.model.candidates[cid]
        body = describe(candidate, self.model, None, candidate.diff)
        self.push_screen(ApprovalModal(cid, body), partial(self._approval_decided, cid))

    def _approval_decided(self, cid: str, decision: str | None) -> None:
        if decision == "approve":
            self._send(Command(CommandType.APPROVE, candidate=cid), f"{cid} approved")
        elif decision == "reject":
            self._ask_reject(cid)
        else:
            self.deferred.add(cid)

    def _ask_reject(self, cid: str) -> None:
        def send(note: str | None) -> None:
            if note is None:
                self.deferred.add(cid)
            else:
                self._send(Command(CommandType.REJECT, candidate=cid, note=note), f"{cid} rejected")

        self.push_screen(TextPrompt(f"Why reject {cid}? (the agent reads this)", "reason"), send)
