"""The campaign state machine: propose, validate, (approve), run, review, repeat.

``Campaign.run()`` drives the loop on the calling thread; every step emits an ``Event`` to
``journal.jsonl`` and to subscribers. Humans and clients steer it through ``command()``,
the one thread-safe entry point. All durable state lives in the campaign directory, so
``resume`` after a crash of the engine continues where the journal and ledger stop.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from engine.agent.base import CandidateSpec, ProposalContext, Proposer
from engine.campaign.approval import approved
from engine.campaign.candidate import Candidate
from engine.campaign.confirm import Confirmer, ConfirmRun
from engine.campaign.envcheck import attach, moved, stop_on_environment_change
from engine.campaign.execute import run_candidate
from engine.campaign.literature_cycle import LiteratureCycle
from engine.campaign.options import CampaignError, CampaignOptions, campaign_dir
from engine.campaign.proposals import Proposal, Proposals, concurrency, spec_of
from engine.campaign.records import best_summary, budget_label
from engine.campaign.recovery import (
    baseline_to_rerun,
    override,
    record_aborted,
    recover_interrupted,
    stop_on_baseline_crash,
)
from engine.campaign.review import review_batch
from engine.campaign.slots import Slots
from engine.control.events import Command, CommandType, Event, EventType
from engine.guard.validate import apply_edits, check_models, model_choices, protected_hashes, validate
from engine.profile import Profile
from engine.run.executors import cancel_run
from engine.run.runner import RunResult, processes_of_run, run_job
from engine.run.sandbox import detect_sandbox
from engine.store.journal import Journal
from engine.store.ledger import Ledger, ResultRow
from engine.store.workspace import CampaignRepo, changed_paths

CHECKPOINT_EVERY = 10


class Campaign:
    def __init__(
        self,
        root: Path,
        profile: Profile,
        tag: str,
        options: CampaignOptions,
        proposer: Proposer,
        run_fn: Callable[..., RunResult] = run_job,
        gpus: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.profile = profile
        self.tag = tag
        self.options = options
        self.proposer = proposer
        self.run_fn = run_fn
        self.gpus = gpus or []
        self.dir = campaign_dir(root, tag)
        self.ledger = Ledger(self.dir)
        self.repo = CampaignRepo(self.root, tag)
        self.journal = Journal(self.dir / "journal.jsonl")
        self.state = "starting"
        self.paused = False
        self.stop_requested = False
        self.aborting = False  # the human aborted the running candidates (a second Ctrl-C)
        self.literature = LiteratureCycle(self)
        self.approval = options.approval
        self.decisions: dict[str, Command] = {}
        self.notes: list[str] = []
        self.hashes: dict[str, str] = {}
        self.model_verdicts: dict[str, str] = {}
        self.awaiting: dict[str, Candidate] = {}
        self.running: dict[str, Candidate] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._cond = threading.Condition()
        self._started = time.time()
        self.proposer_failures = 0  # in a row; the campaign pauses at proposals.MAX_PROPOSER_FAILURES
        self.slots: Slots | None = None  # while run() runs
        self.proposals: Proposals | None = None  # proposer calls in flight, while run() runs
        self._wake = threading.Event()  # set when a slot finishes or a proposal comes back
        self.in_flight: dict[str, Candidate] = {}  # approved, not yet reviewed
        self.confirmer = Confirmer(self)  # confirmation before keep ([review] confirm_seeds)
        self.unreviewed: list[tuple[Candidate, RunResult]] = []  # finished before the baseline was scored

    # -- events and commands -----------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    def emit(self, type_: EventType, **data) -> Event:
        event = self.journal.append(type_, data)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception as error:  # a broken subscriber must not stop the campaign
                self._subscribers.remove(callback)
                self.emit(EventType.ERROR, message=f"subscriber removed: {error}")
        return event

    def command(self, command: Command) -> None:
        """The one thread-safe entry point for pause, resume, stop, approve, reject and the rest."""
        with self._cond:
            kind = command.type
            if kind is CommandType.PAUSE and not self.paused:
                self.paused = True
                self.emit(EventType.PAUSED, note=command.note)
            elif kind is CommandType.RESUME and self.paused:
                self.paused = False
                self.emit(EventType.RESUMED)
            elif kind is CommandType.STOP and not self.stop_requested:
                self.stop_requested = True
                self.emit(EventType.STOPPED, phase="requested", note=command.note)
            elif kind is CommandType.FORCE_LITERATURE:
                self.literature.requested = True
                self.emit(EventType.WATCHDOG, recommend_literature=True, reason="forced by the human")
            elif kind is CommandType.SET_APPROVAL:
                if command.value not in ("auto", "manual"):
                    raise ValueError(f"approval mode must be auto or manual, not {command.value!r}")
                self.approval = command.value
                self.emit(EventType.APPROVAL_MODE, mode=command.value)
            elif kind in (CommandType.APPROVE, CommandType.REJECT):
                if command.candidate not in self.awaiting:
                    raise ValueError(f"candidate {command.candidate!r} is not awaiting approval")
                self.decisions[command.candidate] = command
            elif kind is CommandType.NOTE:
                self.notes.append(command.note)
                self.emit(EventType.NOTE, note=command.note)
            elif kind is CommandType.OVERRIDE:
                override(self, command)
            self._cond.notify_all()

    # -- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Record a new campaign (refusing to overwrite one) and run its baseline onwards."""
        if (self.dir / "campaign.json").exists():
            raise CampaignError(
                f"campaign {self.tag} already exists; continue it with `afr resume {self.tag}`"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hashes = protected_hashes(self.root, self.profile)
        base = self.repo.start()
        meta = {
            "tag": self.tag,
            "profile": self.profile.name,
            "options": asdict(self.options),
            "protected_hashes": self.hashes,
            "base_commit": base,
            "created": time.time(),
            "profile_toml": (self.root / "profiles" / f"{self.profile.name}.toml").read_text()
            if (self.root / "profiles" / f"{self.profile.name}.toml").exists()
            else "",
        }
        (self.dir / "campaign.json").write_text(json.dumps(meta, indent=2))
        self.ledger.ensure()
        self.emit(
            EventType.CAMPAIGN_STARTED,
            tag=self.tag,
            profile=self.profile.name,
            options=asdict(self.options),
            branch=self.repo.branch,
            base_commit=base,
            sandbox=detect_sandbox(),  # what the cockpit header shows: bwrap or none
        )
        self.run()

    def resume(self) -> None:
        """Continue after the engine stopped, however it stopped."""
        meta_path = self.dir / "campaign.json"
        if not meta_path.exists():
            raise CampaignError(f"no campaign {self.tag} in {self.root}")
        meta = json.loads(meta_path.read_text())
        # Read everything before writing anything: a malformed ledger fails here, with no state left.
        self.ledger.rows()
        self.ledger.candidates()
        self.journal.events()
        if meta.get("options") != asdict(self.options):  # caps changed on resume: remember them
            meta["options"] = asdict(self.options)
            meta_path.write_text(json.dumps(meta, indent=2))
        self.hashes = meta["protected_hashes"]
        self._started = meta.get("created", time.time())
        repaired = self.ledger.repair()
        self.emit(EventType.CAMPAIGN_RESUMED, tag=self.tag, sandbox=detect_sandbox())
        if repaired:
            self.emit(EventType.LEDGER_REPAIRED, actions=repaired)
        recover_interrupted(self)
        self.literature.restore()
        self.run()

    def run(self) -> None:
        # Check every architecture of the unchanged model.py once, up front, so args-only
        # candidates reuse the verdicts instead of starting an interpreter each.
        self.slots = Slots(self.options.parallel, self._execute, self._may_start, self._wake)
        attach(self)  # self.trusted (the trusted scoring path) and self.envcheck (the environment record)
        try:
            self.model_verdicts.update(check_models(self.root, self.profile, model_choices(self.profile)))
            self.set_state("running")
            self.confirmer.restore(self.slots)
            self._loop(self.slots)
        except Exception as error:  # leave a state that tells the truth, not "running" with no engine
            self.set_state("stopped")
            self.emit(
                EventType.STOPPED, phase="done", reason=f"engine error: {str(error).splitlines()[0][:200]}"
            )
            raise
        finally:
            self.slots.close()

    def _loop(self, slots: Slots) -> None:
        """Keep every slot busy: propose while candidates run, review each as it finishes."""
        proposals = self.proposals = Proposals(concurrency(self.proposer, slots.width), self._wake)
        while True:
            self._wake.clear()  # before draining: what arrives after it wakes the next wait
            self.review(slots.finished())
            self._take(proposals.done(), slots)
            if self.stop_requested:
                for candidate in slots.take_unstarted():
                    # A dropped confirmation run leaves its candidate unreviewed: a resume confirms it.
                    if isinstance(candidate, ConfirmRun):
                        self.confirmer.dropped(candidate)
                        continue
                    self.in_flight.pop(candidate.id, None)
                    self.finalise(candidate, "rejected", error="not run: the campaign stopped first")
                    self.repo.remove_worktree(candidate.id)
                if slots.in_flight or proposals.pending:  # a proposal still coming is recorded as not run
                    self._wake.wait(timeout=0.5)
                    continue
                self.checkpoint()
                self.set_state("stopped")
                reason = getattr(self, "stop_reason", "") or ("aborted by the human" if self.aborting else "stopped by the human")
                self.emit(EventType.STOPPED, phase="done", reason=reason)
                return
            if self.paused:
                self.set_state("paused")
                with self._cond:
                    self._cond.wait(timeout=0.5)
                continue
            busy = len(self.in_flight) + proposals.pending
            reason = self._cap_reached(busy)
            if reason and not slots.in_flight and not proposals.pending:
                self.checkpoint()
                self.set_state("finished")
                self.emit(EventType.FINISHED, reason=reason, best=self.best_row())
                return
            if reason or busy >= self._work_ahead_limit(slots, proposals) or proposals.full:
                self._wake.wait(timeout=0.5)
                continue
            self.set_state("running")
            if not proposals.pending:  # a review starts from a settled state, as its cards cite it
                self.literature.maybe_run()
            self._check_cost_cap()
            if self.stop_requested or self.paused:
                continue
            if stop_on_environment_change(self):
                continue  # the stop path below ends it, with the check's reason
            rerun = baseline_to_rerun(self)
            make = self.literature.next_call() if rerun is None else (lambda spec=rerun: spec)
            proposals.ask(make, self.repo.head())

    def _take(self, returned: list[Proposal], slots: Slots) -> None:
        """Prepare what the proposer gave back (validate, commit), then approve and queue it."""
        for proposal in returned:
            candidate = self._prepare(spec_of(self, proposal), proposal.parent, proposal_seconds=proposal.seconds)
            self._check_cost_cap()
            if candidate and approved(self, candidate):
                slots.submit(candidate)
                self.in_flight[candidate.id] = candidate

    def _work_ahead_limit(self, slots: Slots, proposals: Proposals) -> int:
        """Approved-and-unreviewed candidates plus proposals in the making allowed at once: every
        slot busy plus as many prepared ahead as the proposer makes at once (one for a serial
        proposer), so a slow proposer works while candidates run (the baseline's included)."""
        if self.best_row() is None and self.literature.requested:
            return 1  # a forced literature review comes first after the baseline: nothing before it
        return slots.width + proposals.limit

    def _may_start(self) -> bool:
        return not self.paused and not self.stop_requested

    # -- steps ---------------------------------------------------------------------------------------

    def _cap_reached(self, in_flight: int = 0) -> str:
        """Why no further candidate may be proposed ('' if one may); in-flight ones count."""
        rows = [r for r in self.ledger.rows() if r.status != "literature"]
        if len(rows) + in_flight >= self.options.max_candidates:
            return f"candidate cap reached ({len(rows)}/{self.options.max_candidates})"
        if self.options.max_hours and time.time() - self._started >= self.options.max_hours * 3600:
            return f"time cap reached ({self.options.max_hours} h)"
        if self._proposed_count() >= 3 * self.options.max_candidates + 10:
            return "too many rejected proposals; the proposer cannot satisfy the guard"
        return ""

    def context(self) -> ProposalContext:
        records = list(self.final_records().values())
        kept = [r for r in records if r.get("status") == "keep"]
        best = max(kept, key=lambda r: r["score"] if self.profile.maximize else -r["score"], default=None)
        return ProposalContext(
            self.profile,
            self.ledger.rows(),
            records,
            dict(best["args"]) if best else {},
            self._proposed_count(),
            self.options.seed,
            list(self.notes),
            root=self.root,
            parent=self.repo.head(),
            tag=self.tag,
            hashes=self.hashes,
            in_flight=[
                {"id": c.id, "args": dict(c.spec.args), "description": c.spec.description}
                for c in list(self.in_flight.values())
            ],
            in_preparation=self.proposals.pending if self.proposals else 0,
        )

    def _check_cost_cap(self) -> None:
        spent = float(getattr(self.proposer, "total_cost", 0.0) or 0.0)
        cap = self.options.max_cost
        if cap is not None and spent >= cap and not self.paused:
            self.command(Command(CommandType.PAUSE, note=f"cost cap reached: ${spent:.4f} of ${cap:.4f}"))

    def _prepare(self, spec: CandidateSpec, parent: str, proposal_seconds: float = 0.0) -> Candidate | None:
        cid = f"c{self._proposed_count() + 1:03d}"
        proposed = time.time()
        self.emit(
            EventType.CANDIDATE_PROPOSED,
            id=cid,
            description=spec.description,
            target=spec.target,
            args=spec.args,
            parent=parent,
            edits=sorted(spec.edits),
            source_refs=spec.source_refs,
            proposer=self.proposer.name,
            telemetry=spec.telemetry,
            proposal_seconds=round(proposal_seconds, 3),  # the proposer's own time (engine/campaign/timing.py)
        )
        worktree = self.repo.worktree_for(cid, parent)
        edit_problem = apply_edits(worktree, spec.edits, self.profile)
        changes = changed_paths(worktree)
        verdict = validate(worktree, changes, self.profile, spec.args, self.hashes, self.model_verdicts)
        if edit_problem:
            verdict.checks["surface"] = edit_problem
        if spec.proposer_error:
            verdict.checks = {"proposer": spec.proposer_error, **verdict.checks}
        candidate = Candidate(
            cid,
            spec,
            parent,
            proposed,
            worktree=worktree,
            edited_files=[path for _, path in changes],
            validation=verdict.checks,
        )
        if not verdict.ok:
            by = "proposer" if spec.proposer_error else "guard"
            self.emit(EventType.CANDIDATE_REJECTED, id=cid, reason=verdict.reason, by=by)
            self.finalise(candidate, "rejected", error=verdict.reason)
            self.repo.remove_worktree(cid)
            return None
        commit = self.repo.commit_candidate(worktree, f"{cid}: {spec.description}") if changes else None
        candidate.commit = commit or parent
        candidate.diff = self.repo.diff(parent, commit) if commit else ""
        self.emit(EventType.CANDIDATE_VALIDATED, id=cid, commit=candidate.commit, checks=verdict.checks)
        return candidate

    def _execute(self, candidate: Candidate | ConfirmRun, slot: int) -> RunResult:
        """On a slot's thread: run one candidate, or one confirmation run."""
        if isinstance(candidate, ConfirmRun):
            return self.confirmer.execute(candidate, slot)
        return run_candidate(self, candidate, slot)

    def review(self, finished: list[tuple[Candidate, RunResult]]) -> None:
        """Each finished candidate against the best known at that moment (earlier ones included).
        Until a baseline is scored, in proposal order: a candidate that ran alongside the baseline
        and finished first waits for it, since it is compared with the baseline."""
        self.unreviewed += finished
        while ready := [item for item in self.unreviewed if self._reviewable(item[0])]:
            self.unreviewed.remove(ready[0])
            candidate, result = ready[0]
            if isinstance(candidate, ConfirmRun):
                self.confirmer.finished(candidate, result)
                continue
            if self.aborting and result.status != "ok":
                record_aborted(self, candidate, result)  # the human's abort: not a crash
                self.in_flight.pop(candidate.id, None)
                continue
            score = result.score if result.status == "ok" else None
            status = review_batch(
                {candidate.id: score},
                self.ledger.rows(),
                self.profile.maximize,
                self.profile.watchdog.min_delta,
            )[candidate.id]
            if score is not None and self.confirmer.enabled():
                status = self.confirmer.gate(candidate, result)  # against the best kept, or confirm first
                if status is None:
                    continue
            self._record(candidate, result, status)
            stop_on_baseline_crash(self, candidate, status, result.error)
            if status == "keep" or len(self.ledger.rows()) % CHECKPOINT_EVERY == 0:
                self.checkpoint()

    def _reviewable(self, candidate: Candidate | ConfirmRun) -> bool:
        oldest = next(iter(self.in_flight), candidate.id)
        return isinstance(candidate, ConfirmRun) or oldest == candidate.id or self.best_row() is not None

    def checkpoint(self) -> None:
        """Commit ``results.tsv`` onto the campaign branch (after keeps, periodically, and at the end)."""
        rows = self.ledger.rows()
        if rows:
            moved(self, self.repo.checkpoint(self.ledger.results_path, f"results.tsv checkpoint: {len(rows)} rows"))

    def _record(self, candidate: Candidate, result: RunResult, status: str, extra: dict | None = None):
        cid, spec = candidate.id, candidate.spec
        self.in_flight.pop(cid, None)
        commit = candidate.commit
        if status == "keep":
            moved(self, self.repo.keep(commit, f"keep {cid}: {spec.description}"))
        elif commit != candidate.parent:
            self.repo.archive(cid, commit)
        self.finalise(candidate, status, result=result, extra=extra)  # the full record first: it can rebuild the row
        self.ledger.append_row(
            ResultRow(
                commit[:7],
                result.score if status != "crash" else 0.0,
                result.runtime_seconds,
                self.budget_label(),
                status,
                spec.target,
                spec.description,
                f"runs/{cid}",
            )
        )
        self.repo.remove_worktree(cid)
        self.emit(
            EventType.CANDIDATE_REVIEWED,
            id=cid,
            status=status,
            score=result.score,
            description=spec.description,
            runtime_seconds=result.runtime_seconds,
            best=self.best_row(),
        )

    def finalise(
        self,
        candidate: Candidate,
        status: str,
        result: RunResult | None = None,
        error: str = "",
        human: dict | None = None,
        extra: dict | None = None,
    ) -> None:
        record = candidate.record(status, self.profile, self.proposer.name, self.hashes, result, error, human)
        record["budget"] = self.budget_label()  # what its results.tsv row says, should it need rebuilding
        self.ledger.append_candidate({**record, **(extra or {})})

    def kill_running(self) -> None:
        """Kill the NVFlare processes of every running candidate (the human aborted them)."""
        self.aborting = True
        for candidate in list(self.running.values()):
            for process in processes_of_run(candidate.token or "-"):
                process.kill()
            cancel_run(self.run_fn, candidate.token)  # a job on a Ray worker: cancel its task

    # -- helpers ----------------------------------------------------------------------------------------

    def final_records(self) -> dict[str, dict]:
        return self.ledger.latest_candidates()

    def _proposed_count(self) -> int:
        return self.journal.proposed_count()

    def budget_label(self) -> str:
        return budget_label(self.profile, self.options.smoke)

    def best_row(self) -> dict | None:
        return best_summary(self.ledger.rows(), self.profile.maximize)

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.emit(EventType.STATE, state=state)
