"""Confirmation before keep: a candidate that beats the incumbent on the campaign seed is run again
on the profile's ``[review] confirm_seeds`` together with the incumbent, and kept only if its
paired mean gain over all its seeds exceeds ``min_delta``.

Why: a single-seed winner is often seed noise (the Heart campaign kept FedAvgM on seed 42 and
``afr repeat`` then found no gain). The confirmation runs are slot work items, so they use the
campaign's runner, slots and GPU placement, and other slots keep running candidates meanwhile.
Everything durable stays on the campaign thread: worktrees are made when a run is submitted and
removed when its result is taken; each run becomes an ``evidence.tsv`` row, so ``afr repeat``
and a resumed campaign reuse it instead of running it again.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.agent.base import CandidateSpec
from engine.campaign.candidate import Candidate
from engine.control.events import EventType
from engine.evidence.runs import EvidenceLedger, EvidenceRow
from engine.run.retry import run_retrying_stalls
from engine.run.runner import RunResult

if TYPE_CHECKING:
    from engine.campaign.loop import Campaign
    from engine.campaign.slots import Slots

ROLE = "confirm"  # the evidence.tsv role of confirmation rows
SUBSET = "validation"  # the campaign scores on the validation subset (as `afr repeat` does)


@dataclass(frozen=True)
class ConfirmRun:
    """One confirmation run: ``record`` (the candidate or the incumbent) on one extra seed."""

    owner: str  # the candidate under confirmation
    record: dict  # the run's candidate record: id, commit, args, description
    seed: int
    worktree: Path
    run_dir: Path

    @property
    def id(self) -> str:  # how the slots and the stop path name it
        return f"{self.record['id']}-seed{self.seed}"


@dataclass
class Confirmation:
    candidate: Candidate
    result: RunResult  # the campaign-seed run, whose score goes in results.tsv
    incumbent: dict  # the incumbent best's record
    seeds: list[int]  # campaign seed first
    scores: dict[tuple[str, int], float | None] = field(default_factory=dict)
    pending: set[tuple[str, int]] = field(default_factory=set)
    runtime_seconds: float = 0.0  # of the confirmation runs made for it (reused ones cost nothing)

    @property
    def total(self) -> int:
        return len(self.seeds) - 1

    def done(self) -> int:
        """Extra seeds for which both the candidate and the incumbent have a result."""
        ids = (self.candidate.id, self.incumbent["id"])
        return sum(1 for s in self.seeds[1:] if all((i, s) in self.scores for i in ids))


class Confirmer:
    """The campaign's confirmations in progress, keyed by candidate id (campaign thread only)."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.active: dict[str, Confirmation] = {}
        self.submitted: set[tuple[str, int]] = set()  # (record id, seed) queued or running
        self.evidence = EvidenceLedger(campaign.dir)

    @property
    def seeds(self) -> list[int]:
        campaign_seed = self.campaign.profile.budget.seed
        extra = [s for s in self.campaign.profile.review.confirm_seeds if s != campaign_seed]
        return [campaign_seed, *dict.fromkeys(extra)]

    def enabled(self) -> bool:
        return self.campaign.options.confirm and len(self.seeds) > 1

    def incumbent(self) -> dict | None:
        """The best kept candidate's record: what a new keep has to beat."""
        records = self.campaign.final_records().values()
        kept = [r for r in records if r.get("status") == "keep" and r.get("score") is not None]
        sign = 1 if self.campaign.profile.maximize else -1
        return max(kept, key=lambda r: sign * r["score"], default=None)

    def slots(self) -> Slots:
        assert self.campaign.slots is not None, "confirmations run while the campaign runs"
        return self.campaign.slots

    def beats(self, result: RunResult, incumbent: dict) -> bool:
        """The campaign-seed score beats the incumbent's by more than min_delta."""
        profile = self.campaign.profile
        margin = result.score - incumbent["score"] if profile.maximize else incumbent["score"] - result.score
        return margin > profile.watchdog.min_delta

    def gate(self, candidate: Candidate, result: RunResult) -> str | None:
        """For a scored candidate: ``keep`` (nothing kept yet), ``discard``, or None when its
        confirmation started (the decision comes when its runs finish)."""
        incumbent = self.incumbent()
        if incumbent is None:
            return "keep"
        if not self.beats(result, incumbent):
            return "discard"
        self.start(candidate, result, incumbent, self.slots())
        return None

    # -- starting ----------------------------------------------------------------------------------

    def start(self, candidate: Candidate, result: RunResult, incumbent: dict, slots: Slots) -> None:
        """Record the campaign-seed runs, then submit every confirmation run not in evidence.tsv."""
        record = _run_record(candidate)
        self._ensure_row(
            record, self.seeds[0], result.status, result.score, result.runtime_seconds, f"runs/{candidate.id}"
        )
        self._ensure_row(
            incumbent,
            self.seeds[0],
            incumbent.get("run_status", "ok"),
            incumbent.get("score"),
            incumbent.get("runtime_seconds") or 0.0,
            f"runs/{incumbent['id']}",
        )
        self.resume(candidate, result, incumbent, slots)

    def resume(self, candidate: Candidate, result: RunResult, incumbent: dict, slots: Slots) -> None:
        confirmation = Confirmation(candidate, result, incumbent, self.seeds)
        self.active[candidate.id] = confirmation
        latest = self.evidence.latest()
        jobs = []
        for rec in (_run_record(candidate), incumbent):
            for seed in self.seeds:
                row = latest.get((rec["id"], SUBSET, seed))
                if row is not None and (row.status == "ok" or seed == self.seeds[0]):
                    confirmation.scores[(rec["id"], seed)] = row.score if row.status == "ok" else None
                elif seed != self.seeds[0]:
                    jobs.append(self._job(candidate.id, rec, seed))
        confirmation.pending = {(job.record["id"], job.seed) for job in jobs}
        self._emit(confirmation, "started")
        if not jobs:
            self._decide(confirmation)
            return
        # A run another confirmation already waits for (the same incumbent seed) is shared, not repeated.
        jobs = [job for job in jobs if (job.record["id"], job.seed) not in self.submitted]
        self.submitted |= {(job.record["id"], job.seed) for job in jobs}
        for job in reversed(jobs):  # ahead of queued candidates: a confirmation holds a keep decision
            slots.submit(job, first=True)

    def _job(self, owner: str, record: dict, seed: int) -> ConfirmRun:
        campaign = self.campaign
        name = f"confirm-{record['id']}-seed{seed}"
        commit = record.get("commit") or campaign.repo.head()
        worktree = campaign.repo.worktree_for(name, commit)
        return ConfirmRun(owner, record, seed, worktree, campaign.dir / "runs" / name)

    # -- after an engine stop ------------------------------------------------------------------------

    def interrupted(self) -> dict[str, dict]:
        """Candidates whose confirmation a stop or crash cut short: id -> what the journal says."""
        found: dict[str, dict] = {}
        keys = {
            EventType.CANDIDATE_PROPOSED: "proposal",
            EventType.CANDIDATE_VALIDATED: "validated",
            EventType.CANDIDATE_FINISHED: "finished",
            EventType.CANDIDATE_CONFIRMING: "confirming",
        }
        for event in self.campaign.journal.events():
            if event.type in keys:
                found.setdefault(event.data.get("id"), {})[keys[event.type]] = {**event.data, "ts": event.ts}
        final = set(self.campaign.final_records())
        return {
            cid: info
            for cid, info in found.items()
            if cid not in final and {"proposal", "finished", "confirming"} <= set(info)
        }

    def restore(self, slots: Slots) -> None:
        """Continue every interrupted confirmation; runs already in evidence.tsv are reused."""
        records = self.campaign.final_records()
        for cid, info in sorted(self.interrupted().items()):
            proposal, finished = info["proposal"], info["finished"]
            incumbent = records.get(info["confirming"].get("incumbent")) or self.incumbent()
            spec = CandidateSpec(
                proposal.get("description", "?"),
                proposal.get("target", "scalar"),
                proposal.get("args") or {},
                source_refs=proposal.get("source_refs") or [],
                telemetry=proposal.get("telemetry") or {},
            )
            parent = proposal.get("parent") or self.campaign.repo.head()
            commit = (info.get("validated") or {}).get("commit") or parent
            candidate = Candidate(cid, spec, parent, proposal["ts"], commit=commit)
            run_dir = str(self.campaign.dir / "runs" / cid)
            result = RunResult(
                finished.get("status", "ok"),
                finished.get("score") or 0.0,
                {},
                finished.get("runtime_seconds") or 0.0,
                str(Path(run_dir) / "job.log"),
                run_dir,
                0,
                [],
                finished.get("error") or "",
            )
            self.campaign.in_flight[cid] = candidate
            if incumbent is None:
                self.record(candidate, result, "keep", {"note": "nothing kept to confirm against"})
                continue
            self.resume(candidate, result, incumbent, slots)

    # -- a slot's side ----------------------------------------------------------------------------

    def execute(self, job: ConfirmRun, slot: int) -> RunResult:
        """Run one confirmation on a slot, as the campaign runs a candidate (runner, GPU, retry)."""
        campaign = self.campaign
        gpu = campaign.gpus[slot % len(campaign.gpus)] if campaign.gpus else None

        def run(run_dir: Path) -> RunResult:
            return campaign.run_fn(
                job.worktree,
                campaign.profile,
                dict(job.record.get("args") or {}),
                run_dir,
                env=campaign.options.env,
                **campaign.options.deployment_kwargs(),  # a real deployment's startup kit and sites
                smoke=campaign.options.smoke,
                gpu=gpu,
                seed=job.seed,
                trusted=getattr(campaign, "trusted", None),  # confirmations take the same trusted path
            )

        return run_retrying_stalls(run, job.run_dir)[0]

    # -- the campaign thread's side ------------------------------------------------------------------

    def finished(self, job: ConfirmRun, result: RunResult) -> None:
        campaign = self.campaign
        campaign.repo.remove_worktree(job.worktree.name)
        score = result.score if result.status == "ok" else None
        self._append(job.record, job.seed, result.status, score, result.runtime_seconds, str(job.run_dir))
        key = (job.record["id"], job.seed)
        self.submitted.discard(key)
        for confirmation in [c for c in self.active.values() if key in c.pending]:
            confirmation.pending.discard(key)
            confirmation.scores[key] = score
            if confirmation.candidate.id == job.owner:  # a shared run counts in one candidate's runtime
                confirmation.runtime_seconds += result.runtime_seconds
            if confirmation.pending:
                self._emit(confirmation, "progress")
            else:
                self._decide(confirmation)

    def dropped(self, job: ConfirmRun) -> None:
        """A confirmation run that never started (the campaign stopped): a resume runs it."""
        self.submitted.discard((job.record["id"], job.seed))
        self.campaign.repo.remove_worktree(job.worktree.name)

    def _decide(self, confirmation: Confirmation) -> None:
        campaign = self.campaign
        candidate = confirmation.candidate
        self.active.pop(candidate.id, None)
        verdict = paired_verdict(
            confirmation,
            campaign.profile.maximize,
            campaign.profile.watchdog.min_delta,
            campaign.profile.review.rule,
        )
        current = self.incumbent()
        if verdict["confirmed"] and current and current["id"] != confirmation.incumbent["id"]:
            # Another candidate was kept while this one was confirming: confirm against it instead
            # (its confirmation seeds are in evidence.tsv already, so this costs no new run for it).
            if self.beats(confirmation.result, current):
                self.resume(candidate, confirmation.result, current, self.slots())
                return
            verdict = {
                **verdict,
                "confirmed": False,
                "note": f"not confirmed: {current['id']} was kept "
                f"meanwhile and scores higher on the campaign seed; {verdict['note']}",
            }
        self._emit(confirmation, "done", confirmed=verdict["confirmed"], gain=verdict["gain"])
        status = "keep" if verdict["confirmed"] else "discard"
        self.record(candidate, confirmation.result, status, verdict)

    def record(self, candidate: Candidate, result: RunResult, status: str, verdict: dict) -> None:
        """A confirmation's outcome; its runs count in the candidate's runtime (results.tsv too)."""
        total = result.runtime_seconds + float(verdict.get("runtime_seconds") or 0.0)
        self.campaign._record(
            candidate, replace(result, runtime_seconds=total), status, {"confirmation": verdict}
        )
        if status == "keep":
            self.campaign.checkpoint()

    # -- evidence.tsv ----------------------------------------------------------------------------------

    def _ensure_row(self, record, seed, status, score, runtime, run_dir) -> None:
        row = self.evidence.latest().get((record["id"], SUBSET, seed))
        if row is None or (row.status != "ok" and status == "ok"):
            self._append(record, seed, status, score, runtime, run_dir)

    def _append(self, record: dict, seed: int, status: str, score, runtime: float, run_dir: str) -> None:
        path = Path(run_dir)
        relative = (
            str(path.relative_to(self.campaign.dir))
            if path.is_absolute() and path.is_relative_to(self.campaign.dir)
            else str(run_dir)
        )
        self.evidence.append(
            EvidenceRow(
                record["id"],
                "baseline" if record["id"] == self._baseline_id() else ROLE,
                SUBSET,
                seed,
                status if score is not None or status != "ok" else "crash",
                score,
                float(runtime or 0.0),
                (record.get("commit") or "")[:7],
                relative,
            )
        )

    def _baseline_id(self) -> str | None:
        """The campaign's baseline (its first scored candidate): its rows say so, as `afr repeat`'s do,
        so a repeat that reuses them still finds its baseline."""
        for row in self.campaign.ledger.rows():
            if row.status in ("keep", "discard") and row.score is not None:
                return row.artifacts.removeprefix("runs/")
        return None

    def _emit(self, confirmation: Confirmation, phase: str, **extra) -> None:
        self.campaign.emit(
            EventType.CANDIDATE_CONFIRMING,
            id=confirmation.candidate.id,
            phase=phase,
            done=confirmation.done(),
            total=confirmation.total,
            incumbent=confirmation.incumbent["id"],
            seeds=confirmation.seeds,
            **extra,
        )


def _run_record(candidate: Candidate) -> dict:
    return {
        "id": candidate.id,
        "commit": candidate.commit,
        "args": dict(candidate.spec.args),
        "description": candidate.spec.description,
    }


def paired_verdict(confirmation: Confirmation, maximize: bool, min_delta: float, rule: str = "mean") -> dict:
    """Per-seed scores and the paired mean gain over the seeds where the incumbent has a score.

    A candidate that failed on any seed is not confirmed: a recipe that crashes on some seeds is
    no keep.
    """
    cid, iid = confirmation.candidate.id, confirmation.incumbent["id"]
    candidate = {s: confirmation.scores.get((cid, s)) for s in confirmation.seeds}
    incumbent = {s: confirmation.scores.get((iid, s)) for s in confirmation.seeds}
    sign = 1.0 if maximize else -1.0
    paired = [s for s in confirmation.seeds if candidate[s] is not None and incumbent[s] is not None]
    gains = [sign * (candidate[s] - incumbent[s]) for s in paired]
    failed = [s for s in confirmation.seeds if candidate[s] is None]
    gain = statistics.fmean(gains) if gains else None
    confirmed = not failed and gain is not None and gain > min_delta
    losing = [s for s, g in zip(paired, gains, strict=True) if g <= 0] if rule == "every_seed" else []
    if confirmed and losing:
        confirmed = False
        reason = f"not confirmed: paired mean gain {gain:+.4f}, but no gain on seed(s) {', '.join(map(str, losing))}"
    elif confirmed:
        reason = f"confirmed: paired mean gain {gain:+.4f} over {len(gains)} seeds > {min_delta:g}"
    elif failed:
        reason = f"not confirmed: failed on seed(s) {', '.join(map(str, failed))}"
    else:
        reason = (
            f"not confirmed: paired mean gain {'-' if gain is None else f'{gain:+.4f}'} over "
            f"{len(gains)} seeds <= {min_delta:g}"
        )
    per_seed = ", ".join(f"seed {s}: {_f(candidate[s])} vs {_f(incumbent[s])}" for s in confirmation.seeds)
    return {
        "confirmed": confirmed,
        "gain": gain,
        "seeds": confirmation.seeds,
        "incumbent": iid,
        "candidate_scores": {str(s): v for s, v in candidate.items()},
        "incumbent_scores": {str(s): v for s, v in incumbent.items()},
        "runtime_seconds": round(confirmation.runtime_seconds, 1),
        "note": f"{reason} ({per_seed})",
        "finished": time.time(),
    }


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
