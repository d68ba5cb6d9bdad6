"""The headless view of a running campaign: a rich live panel on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from engine.campaign.loop import Campaign
from engine.campaign.timing import time_line
from engine.control.events import Command, CommandType, Event, EventType
from engine.wording import counted, plural

STATUS_STYLE = {
    "keep": "green",
    "discard": "grey50",
    "crash": "red",
    "literature": "magenta",
    "candidate": "blue",
}


class ConsoleView:
    """Subscribes to a campaign and renders it until the campaign ends."""

    def __init__(self, campaign: Campaign, console: Console | None = None) -> None:
        self.campaign = campaign
        self.console = console or Console()
        self.live_mode = self.console.is_terminal
        self.running: dict[str, dict] = {}
        self.last_line = ""
        self.reason = ""  # why the campaign is paused, shown beside its state
        self.started = time.time()
        self._lock = threading.Lock()
        self._done = threading.Event()
        campaign.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        data = event.data
        with self._lock:
            if event.type is EventType.CANDIDATE_STARTED:
                self.running[data["id"]] = {"description": data.get("description", ""), "since": event.ts}
            elif event.type in (EventType.CANDIDATE_LOG, EventType.CANDIDATE_ROUND):
                self.last_line = data.get("line", "")
            elif event.type is EventType.CANDIDATE_FINISHED:
                self.running.pop(data["id"], None)
            elif event.type is EventType.PAUSED:
                self.reason = data.get("note") or "paused by the human"
            elif event.type is EventType.RESUMED:
                self.reason = ""
        if self.live_mode:
            return
        line = self._plain(event)
        if line:
            print(line, flush=True)

    def _plain(self, event: Event) -> str:
        return plain_line(event)

    def render(self):
        campaign = self.campaign
        rows = campaign.ledger.rows()
        scored = [r for r in rows if r.score is not None and r.status not in ("crash", "literature")]
        done = len([r for r in rows if r.status != "literature"])
        cap = campaign.options.max_candidates
        best = (max if campaign.profile.maximize else min)((r.score for r in scored), default=None)
        baseline = scored[0].score if scored else None
        elapsed = time.time() - self.started
        per = elapsed / max(1, done) if done else None
        eta = f"{per * (cap - done) / 60:.0f} min" if per else "?"
        header = Text.assemble(
            (f"{campaign.tag}", "bold"),
            f"  {campaign.profile.name}  {campaign.proposer.name}  ",
            (campaign.state, "bold cyan"),
            (f" ({self.reason})" if self.reason and campaign.paused else "", "yellow"),
            f"  {done}/{cap} {plural(cap, 'candidate')}  elapsed {elapsed / 60:.1f} min  ETA {eta}",
        )
        if best is not None:
            lift = campaign.profile.metric.lift(best, baseline)
            header.append(
                f"\nbaseline {baseline:.4f}  best {best:.4f}  lift {lift:+.4f}"
                f" ({100 * lift / abs(baseline) if baseline else 0:+.1f}%)"
            )
        with self._lock:
            running = [
                f"{cid}: {info['description']} ({time.time() - info['since']:.0f} s)"
                for cid, info in self.running.items()
            ]
            last = self.last_line
        table = Table(expand=True, box=None)
        for column in ("#", "status", "score", "runtime", "description"):
            table.add_column(column, no_wrap=column != "description")
        for index, row in list(enumerate(rows))[-10:]:
            score = "" if row.score is None else f"{row.score:.4f}"
            table.add_row(
                str(index),
                Text(row.status, STATUS_STYLE.get(row.status, "")),
                score,
                f"{row.runtime_seconds:.0f}s",
                row.description,
            )
        body = [
            header,
            Text("running: " + ("; ".join(running) or "-"), style="blue"),
            Text(last[-160:], "dim"),
            table,
        ]
        return Panel(Group(*body), title="afr campaign (headless)")

    def run(self, target) -> bool:
        """Run ``target`` (the campaign loop) on a worker thread while rendering.

        The first Ctrl-C asks the campaign to stop after the running candidate; a second one
        kills the running job at once. Returns False when the user aborted.
        """
        # The main thread polls a flag with sleep(): a Ctrl-C that interrupts Thread.join() can
        # leave the thread wrongly marked as finished on CPython 3.11.
        worker = threading.Thread(target=self._guarded(target), daemon=True)
        worker.start()
        interrupts = 0
        live = Live(self.render(), console=self.console, refresh_per_second=2) if self.live_mode else None
        if live:
            live.start()
        try:
            while not self._done.is_set():
                try:
                    if live:
                        live.update(self.render())
                    time.sleep(0.25)
                except KeyboardInterrupt:
                    interrupts += 1
                    if interrupts == 1:
                        self.campaign.command(Command(CommandType.STOP, note="Ctrl-C"))
                        self.console.print(
                            "[yellow]stopping after the running candidate; Ctrl-C again to abort it[/]"
                        )
                    else:
                        self.campaign.kill_running()
                        self._done.wait(timeout=30)
                        break
        finally:
            if live:
                live.update(self.render())
                live.stop()
        if self._error:
            raise self._error
        return interrupts < 2

    _error: BaseException | None = None

    def _guarded(self, target):
        def call():
            try:
                target()
            except BaseException as error:  # surfaced on the main thread after the view closes
                self._error = error
            finally:
                self._done.set()

        return call


def plain_line(event: Event) -> str:
    """One readable line per event worth a line in a log (never a dict's repr)."""
    data = event.data
    kind = event.type
    if kind is EventType.CANDIDATE_STARTED:
        return f"[{data['id']}] running: {data.get('description', '')}"
    if kind is EventType.CANDIDATE_REVIEWED:
        score = data.get("score")
        if score is None:
            return f"[{data['id']}] {data['status']:<8} {'-':>8}  {data.get('description', '')}".rstrip()
        return f"[{data['id']}] {data['status']:<8} {score:.6f}  {data.get('description', '')}"
    if kind is EventType.CANDIDATE_REJECTED:
        return f"[{data['id']}] rejected by the {data.get('by', 'guard')}: {data['reason']}"
    if kind is EventType.CANDIDATE_AWAITING_APPROVAL:
        return f"[{data['id']}] awaiting approval: {data['description']}"
    if kind is EventType.CANDIDATE_CONFIRMING:
        outcome = {True: ": confirmed", False: ": not confirmed"}.get(data.get("confirmed"), "")
        return f"[{data['id']}] confirming {data['done']}/{data['total']} vs {data['incumbent']}{outcome}"
    if kind is EventType.LITERATURE_STARTED:
        return f"literature review: {data.get('reason', '')}"
    if kind is EventType.LITERATURE_FINISHED:
        selected = data.get("selected") or []
        ideas = "; ".join(selected) if selected else "no new ideas"
        return (
            f"literature review done ({data.get('worksheet', '')}): {counted(len(selected), 'idea')}: {ideas}"
        )
    if kind is EventType.PAUSED:
        return f"paused: {data.get('note') or 'by the human'}"
    if kind is EventType.RESUMED:
        return "resumed"
    if kind is EventType.STOPPED:
        if data.get("phase") == "done":
            return f"stopped: {data.get('reason', '')}"
        return f"stopping after the running candidate{': ' + data['note'] if data.get('note') else ''}"
    if kind is EventType.FINISHED:
        return f"finished: {data.get('reason', '')}"
    if kind is EventType.ERROR:
        return f"error: {data.get('message', '')}"
    if kind is EventType.LEDGER_REPAIRED:
        return "ledger repaired: " + "; ".join(data.get("actions") or [])
    return ""


def print_status(summary: dict, out=None) -> None:
    # sys.stdout looked up now, not at import (a default argument would keep a stream replaced since)
    console = Console(file=out or sys.stdout, highlight=False)
    reason = f" ({summary['reason']})" if summary.get("reason") else ""
    console.print(
        f"[bold]{summary['tag']}[/] ({summary['profile']}): {summary['state']}{reason}, "
        f"{counted(summary['candidates'], 'candidate')}, {summary['kept']} kept, "
        f"{counted(summary['crashes'], 'crash')}"
        + (f", {summary['aborted']} aborted" if summary.get("aborted") else ""),
        soft_wrap=True,  # one line per fact, however narrow the terminal (or a pipe)
    )
    if summary.get("sandbox"):
        console.print(f"sandbox: {summary['sandbox']}", soft_wrap=True)
    if summary.get("scored_by"):  # a real deployment's sites, not afr's evaluator
        console.print(f"scored by: {summary['scored_by']}", soft_wrap=True)
    if summary.get("best") is not None:
        console.print(
            f"baseline {summary['baseline']:.6f}  best {summary['best']:.6f}  ({summary['best_description']})",
            soft_wrap=True,
        )
    timing = time_line(summary.get("time") or {})
    if timing:
        console.print(timing, soft_wrap=True)
    llm = summary.get("llm") or {}
    if llm.get("models"):
        console.print(
            f"LLM {', '.join(llm['models'])}: {llm['model_calls']} calls, {llm['prompt_tokens']:,} prompt + "
            f"{llm['completion_tokens']:,} completion tokens, ${llm['cost_usd']:.4f}",
            soft_wrap=True,
        )
