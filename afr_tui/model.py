"""The cockpit's view of a campaign, folded from engine events. Plain Python: no Textual here,
so the fold is tested on its own and the widgets only read it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.control.events import Event
from engine.run.executors import PLACED

STATUS_STYLE = {
    "keep": "bold green",
    "discard": "grey62",
    "crash": "bold red",
    "candidate": "dodger_blue1",
    "literature": "medium_purple1",
    "running": "bold dodger_blue1",
    "awaiting": "bold yellow",
    "rejected": "dark_orange",
    "confirming": "bold yellow",
}
STATUS_LABEL = {"running": "▶ running", "awaiting": "? awaiting"}
PHASE_LINE = re.compile(r"afr: (round \d+/\d+|final evaluation)")
FINAL_STATUSES = ("keep", "discard", "crash", "literature", "rejected")


def placement_text(placement: dict | None) -> str:
    """A record's or event's placement as the cockpit shows it; empty for a local run."""
    if not placement or not placement.get("node_id"):
        return ""
    gpus = ",".join(placement.get("gpus") or []) or "-"
    tries = placement.get("attempts", 1)
    return f"{placement.get('node_ip', '?')} {placement['node_id'][:12]} gpu {gpus}" + (
        f" (try {tries})" if tries > 1 else ""
    )


@dataclass
class CandidateView:
    id: str
    order: int
    status: str = "candidate"
    score: float | None = None
    runtime: float | None = None
    target: str = ""
    description: str = ""
    parent: str | None = None
    commit: str | None = None
    args: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    diff: str | None = None
    error: str = ""
    note: str = ""
    run_dir: str = ""
    started: float | None = None
    gpu: str | None = None  # the device its slot owns, while it runs
    node: str = ""  # where a remote executor runs it: "192.0.2.7 3f2a9c1b gpu 0" (a Ray node)
    phase: str = ""  # while it runs: "round 7/15", "final evaluation"
    confirming: str = ""  # "1/2": confirmation seeds done of total, while confirming
    curve: list[tuple[int, float]] = field(default_factory=list)  # (round, global metric) as rounds arrive
    rounds_total: int | None = None


@dataclass
class Notice:
    message: str
    title: str = ""
    severity: str = "information"  # information, warning or error (Textual's toast levels)


@dataclass
class Changes:
    """What one batch of events changed, so widgets redraw only what they must."""

    rows: set[str] = field(default_factory=set)
    header: bool = False
    plot: bool = False
    best: bool = False
    log: list[tuple[str, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    awaiting: bool = False
    curves: set[str] = field(default_factory=set)  # candidates whose live curve grew

    def merge(self, other: Changes) -> None:
        self.rows |= other.rows
        self.header |= other.header
        self.plot |= other.plot
        self.best |= other.best
        self.log += other.log
        self.notices += other.notices
        self.awaiting |= other.awaiting
        self.curves |= other.curves


class CockpitModel:
    def __init__(self) -> None:
        self.tag = ""
        self.profile = ""
        self.options: dict = {}
        self.created: float | None = None
        self.maximize = True
        self.baseline_args: dict = {}
        self.state = "starting"
        self.paused = False
        self.pause_reason = ""  # the PAUSE command's note: the human, a cost cap, a failing proposer
        self.stopping = False
        self.approval = "auto"
        self.ended = ""  # the reason the campaign finished or stopped
        self.ended_at: float | None = None
        self.candidates: dict[str, CandidateView] = {}
        self.awaiting: dict[str, dict] = {}
        self.running: list[str] = []
        self.points: list[tuple[int, float | None, str]] = []  # (x, score, status) per reviewed candidate
        self.point_of: dict[str, int] = {}
        self.literature_marks: list[int] = []
        self.best_id: str | None = None
        self.best_score: float | None = None
        self.baseline: float | None = None
        self.tokens = 0
        self.cost = 0.0
        self.model_name = ""
        self.metric = ""  # the profile's metric, named by the runner's round lines
        self.last_seq = 0
        self.sandbox = ""  # "bwrap" or "none" (any run without one); "" until the engine says

    # -- loading ----------------------------------------------------------------------------------

    def load_meta(self, meta: dict) -> None:
        """``campaign.json``: tag, profile, options, creation time."""
        self.tag = meta.get("tag", self.tag)
        self.profile = meta.get("profile", self.profile)
        self.options = meta.get("options") or self.options
        self.created = meta.get("created", self.created)
        self.approval = self.options.get("approval", self.approval)
        self.sandbox = meta.get("sandbox", self.sandbox)

    # -- derived ----------------------------------------------------------------------------------

    @property
    def cap(self) -> int:
        return int(self.options.get("max_candidates") or 0)

    @property
    def done(self) -> int:
        """Candidates reviewed (kept, discarded or crashed): one plot point each."""
        return len(self.points)

    @property
    def proposer(self) -> str:
        name = self.options.get("proposer") or "scripted"
        model = self.model_name or self.options.get("model")
        return f"{name}/{model}" if model else name

    def lift(self) -> tuple[float, float] | None:
        if self.best_score is None or self.baseline is None:
            return None
        # A gain is positive whichever way the metric points (a loss that falls is a lift).
        delta = (self.best_score - self.baseline) * (1 if self.maximize else -1)
        return delta, (100.0 * delta / abs(self.baseline) if self.baseline else 0.0)

    def eta_seconds(self, now: float) -> float | None:
        if not self.created or not self.done or self.ended:
            return None
        elapsed = now - self.created
        # From the candidates' own run times, not the wall clock since creation: a campaign
        # resumed after a day of downtime is not a day per candidate.
        runtimes = [c.runtime for c in self.candidates.values() if c.runtime]
        width = max(1, int(self.options.get("parallel") or 1))
        per = sum(runtimes) / len(runtimes) / width if runtimes else elapsed / self.done
        left = max(0, self.cap - self.done) * per
        hours = self.options.get("max_hours")
        if hours:
            left = min(left, max(0.0, hours * 3600 - elapsed))
        return left

    def display_state(self) -> str:
        if self.ended:
            return f"stopped ({self.ended})" if self.state == "stopped" else self.state
        if self.stopping:
            return "stopping"
        if self.paused and self.state != "paused":
            return f"{self.state} (pausing)"
        if self.state == "paused" and self.pause_reason:
            return f"paused ({self.pause_reason})"
        return self.state

    def diff_to_best(self, candidate: CandidateView) -> float | None:
        if candidate.score is None or self.best_score is None or candidate.status in ("crash", "literature"):
            return None
        return candidate.score - self.best_score

    # -- the fold ---------------------------------------------------------------------------------

    def replay(self, events: list[Event]) -> None:
        """Fold history without collecting what changed (the first load draws everything anyway)."""
        scratch = Changes()
        for event in events:
            if event.seq and event.seq <= self.last_seq:
                continue
            self.last_seq = max(self.last_seq, event.seq)
            handler = getattr(self, f"_on_{event.type.value}", None)
            if handler:
                handler(event, event.data, scratch)
            if len(scratch.log) > 1000 or len(scratch.notices) > 1000:
                scratch = Changes()

    def apply_all(self, events: list[Event]) -> Changes:
        changes = Changes()
        for event in events:
            changes.merge(self.apply(event))
        return changes

    def apply(self, event: Event) -> Changes:
        if event.seq and event.seq <= self.last_seq:
            return Changes()  # seen already (a reconnect re-read the journal)
        self.last_seq = max(self.last_seq, event.seq)
        handler = getattr(self, f"_on_{event.type.value}", None)
        changes = Changes()
        if handler:
            handler(event, event.data, changes)
        return changes

    def _candidate(self, cid: str) -> CandidateView:
        if cid not in self.candidates:
            self.candidates[cid] = CandidateView(cid, order=len(self.candidates))
        return self.candidates[cid]

    def _on_campaign_started(self, event: Event, data: dict, changes: Changes) -> None:
        self.tag = data.get("tag", self.tag)
        self.profile = data.get("profile", self.profile)
        self.options = data.get("options") or self.options
        self.approval = self.options.get("approval", self.approval)
        self.created = self.created or event.ts
        self.sandbox = data.get("sandbox", self.sandbox)
        changes.header = True

    def _on_campaign_resumed(self, event: Event, data: dict, changes: Changes) -> None:
        self.ended, self.ended_at = "", None
        self.stopping = False
        self.paused = False
        if self.sandbox != "none":  # one unsandboxed engine makes the whole campaign "none"
            self.sandbox = data.get("sandbox", self.sandbox)
        changes.header = True

    def _count_llm(self, telemetry: dict) -> None:
        self.tokens += int(telemetry.get("prompt_tokens", 0) or 0) + int(
            telemetry.get("completion_tokens", 0) or 0
        )
        self.cost += float(telemetry.get("cost_usd", 0.0) or 0.0)
        self.model_name = telemetry.get("model") or self.model_name

    def _on_candidate_proposed(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.description = data.get("description", "")
        candidate.target = data.get("target", "")
        candidate.args = data.get("args") or {}
        candidate.parent = data.get("parent")
        self._count_llm(data.get("telemetry") or {})
        changes.rows.add(candidate.id)
        changes.header = True

    def _on_telemetry(self, event: Event, data: dict, changes: Changes) -> None:
        """What a literature cycle's model calls cost (proposals carry theirs)."""
        self._count_llm(data)
        changes.header = True

    def _on_candidate_validated(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.commit = data.get("commit")
        candidate.checks = data.get("checks") or {}
        changes.rows.add(candidate.id)

    def _on_candidate_rejected(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.status = "rejected"
        candidate.error = data.get("reason", "")
        changes.rows.add(candidate.id)

    def _on_candidate_awaiting_approval(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.status = "awaiting"
        candidate.diff = data.get("diff")
        candidate.checks = data.get("checks") or candidate.checks
        self.awaiting[candidate.id] = data
        changes.rows.add(candidate.id)
        changes.awaiting = True
        changes.header = True

    def _settle(self, cid: str, changes: Changes) -> None:
        if self.awaiting.pop(cid, None) is not None:
            changes.awaiting = True

    def _on_decision(self, event: Event, data: dict, changes: Changes) -> None:
        cid = data.get("id") or ""
        candidate = self._candidate(cid)
        decision = data.get("decision", "")
        candidate.note = data.get("note", "")
        self._settle(cid, changes)
        if decision == "reject":
            candidate.status = "rejected"
            candidate.error = f"rejected by the human: {candidate.note}"
        elif decision == "approve":
            candidate.status = "candidate"
        elif decision.startswith("override:"):
            candidate.status = decision.split(":", 1)[1]
            if cid in self.point_of:
                x, score, _ = self.points[self.point_of[cid]]
                self.points[self.point_of[cid]] = (x, score, candidate.status)
                changes.plot = True
        changes.rows.add(cid)

    def _on_candidate_started(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.status = "running"
        candidate.started = event.ts
        candidate.run_dir = data.get("run_dir", "")
        candidate.gpu = data.get("gpu")
        candidate.phase = "starting NVFlare"
        if candidate.id not in self.running:
            self.running.append(candidate.id)
        self._settle(candidate.id, changes)
        changes.rows.add(candidate.id)
        changes.header = True

    def _on_candidate_log(self, event: Event, data: dict, changes: Changes) -> None:
        line = data.get("line", "")
        changes.log.append((data.get("id", ""), line))
        # The runner's own progress lines (engine/run/phases.py): the row shows where the job is.
        if line.startswith(PLACED) and data.get("id") in self.candidates:
            self.candidates[data["id"]].node = line.removeprefix(PLACED).strip()
            changes.rows.add(data["id"])
        match = PHASE_LINE.search(line)
        if match and data.get("id") in self.candidates:
            candidate = self.candidates[data["id"]]
            candidate.phase = match.group(1)
            changes.rows.add(candidate.id)

    def _on_candidate_round(self, event: Event, data: dict, changes: Changes) -> None:
        """A running job's per-round global metric: one more point on its live curve."""
        self._on_candidate_log(event, data, changes)  # the row's phase and the log pane, as before
        cid, number, value = data.get("id"), data.get("round"), data.get("value")
        if cid not in self.candidates or not isinstance(number, int) or not isinstance(value, (int, float)):
            return
        candidate = self.candidates[cid]
        if candidate.curve and number <= candidate.curve[-1][0]:
            candidate.curve = []  # a retried run starts its rounds again
        candidate.curve.append((number, float(value)))
        candidate.rounds_total = data.get("total") or candidate.rounds_total
        self.metric = data.get("metric") or self.metric
        changes.curves.add(cid)

    def gpu_owners(self) -> dict[str, str]:
        """Device -> the running candidate whose slot owns it."""
        return {
            self.candidates[cid].gpu: cid
            for cid in self.running
            if cid in self.candidates and self.candidates[cid].gpu is not None
        }

    def _on_candidate_finished(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.runtime = data.get("runtime_seconds")
        candidate.error = data.get("error") or ""
        if data.get("sandbox") == "none":  # as `afr status`: any run without a sandbox says none
            self.sandbox = "none"
        candidate.node = placement_text(data.get("placement")) or candidate.node
        if candidate.id in self.running:
            self.running.remove(candidate.id)
        changes.rows.add(candidate.id)
        changes.header = True

    def _on_candidate_confirming(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.status = "confirming"
        candidate.confirming = f"{data.get('done', 0)}/{data.get('total', 0)}"
        changes.rows.add(candidate.id)

    def _on_candidate_reviewed(self, event: Event, data: dict, changes: Changes) -> None:
        candidate = self._candidate(data["id"])
        candidate.status = data.get("status", candidate.status)
        candidate.score = data.get("score")
        candidate.runtime = data.get("runtime_seconds", candidate.runtime)
        candidate.description = data.get("description") or candidate.description
        if data.get("error"):
            candidate.error = data["error"]
        if candidate.id in self.running:
            self.running.remove(candidate.id)
        if candidate.id not in self.point_of:
            self.point_of[candidate.id] = len(self.points)
            self.points.append((len(self.points) + 1, candidate.score, candidate.status))
        best = data.get("best")
        if best:
            best_id = (best.get("artifacts") or "").removeprefix("runs/") or None
            if best_id != self.best_id and best_id and self.best_id is not None:
                changes.notices.append(
                    Notice(f"{best_id}: {best['score']:.4f}  {best.get('description', '')}", "New best")
                )
            if best_id != self.best_id:
                changes.best = True
            self.best_id, self.best_score, self.baseline = best_id, best.get("score"), best.get("baseline")
        if candidate.status == "crash":
            changes.notices.append(
                Notice(f"{candidate.id}: {candidate.error or 'crashed'}", "Crash", "error")
            )
        changes.rows.add(candidate.id)
        changes.plot = changes.header = True

    def _on_literature_started(self, event: Event, data: dict, changes: Changes) -> None:
        self.literature_marks.append(len(self.points) + 1)
        changes.notices.append(Notice(data.get("reason", ""), "Literature review", "warning"))
        changes.plot = changes.header = True

    def _on_literature_finished(self, event: Event, data: dict, changes: Changes) -> None:
        number = sum(1 for c in self.candidates.values() if c.status == "literature") + 1
        row = self._candidate(f"L{number:03d}")
        row.status = "literature"
        row.target = "literature"
        selected = data.get("selected") or []
        ideas = [idea.removeprefix("literature: ") for idea in selected]  # each says it already
        row.description = "literature: " + ("; ".join(ideas) if ideas else "no new ideas")
        row.run_dir = data.get("worksheet", "")
        changes.notices.append(Notice(f"{len(selected)} ideas selected", "Literature review done"))
        changes.rows.add(row.id)

    def _on_state(self, event: Event, data: dict, changes: Changes) -> None:
        before, self.state = self.state, data.get("state", self.state)
        if self.state == "paused":
            self.paused = True
            if before != "paused":  # only now is nothing running
                changes.notices.append(Notice(self.pause_reason, "Paused", "warning"))
        changes.header = True

    def _on_paused(self, event: Event, data: dict, changes: Changes) -> None:
        self.paused = True
        self.pause_reason = data.get("note") or ""
        if self.running:  # the engine pauses after them: say so, not "Paused"
            changes.notices.append(
                Notice(self.pause_reason, "Pausing after the running candidate", "warning")
            )
        changes.header = True

    def _on_resumed(self, event: Event, data: dict, changes: Changes) -> None:
        self.paused = False
        self.pause_reason = ""
        changes.header = True

    def _on_approval_mode(self, event: Event, data: dict, changes: Changes) -> None:
        self.approval = data.get("mode", self.approval)
        if self.approval == "auto" and self.awaiting:
            self.awaiting.clear()  # the engine lets waiting candidates run
            changes.awaiting = True
        changes.header = True

    def _on_stopped(self, event: Event, data: dict, changes: Changes) -> None:
        if data.get("phase") == "done":
            self.ended = data.get("reason", "stopped")
            self.ended_at = event.ts
            self.stopping = False
            changes.notices.append(Notice(self.ended, "Campaign stopped", "warning"))
        else:
            self.stopping = True
        self.awaiting.clear()
        changes.awaiting = changes.header = True

    def _on_finished(self, event: Event, data: dict, changes: Changes) -> None:
        self.ended = data.get("reason", "finished")
        self.ended_at = event.ts
        self.state = "finished"
        changes.notices.append(Notice(self.ended, "Campaign finished"))
        changes.header = True

    def _on_error(self, event: Event, data: dict, changes: Changes) -> None:
        changes.notices.append(Notice(data.get("message", ""), "Engine error", "error"))
