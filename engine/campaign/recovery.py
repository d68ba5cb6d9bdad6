"""What the human and a restarted engine do to candidates already reviewed or cut short."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from engine.agent.base import CandidateSpec
from engine.campaign.candidate import Candidate
from engine.campaign.envcheck import moved
from engine.control.events import Command, CommandType, EventType
from engine.run.executors import sweep_runs
from engine.run.runner import RunResult, processes_of_run
from engine.store.ledger import ResultRow

if TYPE_CHECKING:
    from engine.campaign.loop import Campaign


def override(campaign: Campaign, command: Command) -> None:
    """The human flips a reviewed candidate between keep and discard."""
    status = command.value
    if status not in ("keep", "discard"):
        raise ValueError(f"override status must be keep or discard, not {status!r}")
    record = campaign.final_records().get(command.candidate or "")
    if not record or record.get("status") not in ("keep", "discard"):
        raise ValueError(f"candidate {command.candidate!r} has no keep/discard result to override")
    campaign.ledger.rewrite_status(f"runs/{command.candidate}", status)
    if status == "keep":
        moved(
            campaign,
            campaign.repo.keep(
                record["commit"], f"keep {command.candidate} (human override): {command.note}"
            ),
        )
    campaign.ledger.append_candidate(
        {**record, "status": status, "human": {"decision": f"override:{status}", "note": command.note}}
    )
    campaign.emit(EventType.DECISION, id=command.candidate, decision=f"override:{status}", note=command.note)


def recover_interrupted(campaign: Campaign) -> None:
    """A candidate that was running when the engine died is recorded as a crash; one that was
    waiting for a slot, as not run (it never started: its proposal is simply not used)."""
    for cid, proposal in campaign.journal.unstarted(set(campaign.final_records())).items():
        spec = CandidateSpec(
            proposal.get("description", "?"),
            proposal.get("target", "scalar"),
            proposal.get("args", {}),
            source_refs=proposal.get("source_refs", []),
        )
        parent = proposal.get("parent") or campaign.repo.head()
        candidate = Candidate(cid, spec, parent, time.time(), commit=parent)
        campaign.finalise(candidate, "rejected", error="not run: the engine stopped before a slot was free")
        campaign.repo.remove_worktree(cid)
    confirming = set(campaign.confirmer.interrupted())  # continued by the confirmer, not crashed
    unfinished = campaign.journal.unfinished(set(campaign.final_records()) | confirming)
    # A job on a Ray worker is not among this machine's processes: the executor sweeps its nodes.
    sweep_runs(campaign.run_fn, [info.get("token", "") for info in unfinished.values()])
    for cid, info in unfinished.items():
        for process in processes_of_run(info.get("token", "-")):
            process.kill()
        proposal = info.get("proposal", {})
        spec = CandidateSpec(
            proposal.get("description", "?"),
            proposal.get("target", "scalar"),
            proposal.get("args", {}),
            source_refs=proposal.get("source_refs", []),
        )
        parent = proposal.get("parent") or campaign.repo.head()
        candidate = Candidate(cid, spec, parent, info["started"], commit=parent, started=info["started"])
        runtime = time.time() - info["started"]
        result = RunResult("crash", 0.0, {}, runtime, info["run_dir"], None, None, [], "interrupted")
        campaign.finalise(candidate, "crash", result=result, error="interrupted")
        campaign.ledger.append_row(
            ResultRow(
                parent[:7],
                0.0,
                runtime,
                campaign.budget_label(),
                "crash",
                spec.target,
                spec.description + " (interrupted)",
                f"runs/{cid}",
            )
        )
        campaign.repo.remove_worktree(cid)
        campaign.emit(
            EventType.CANDIDATE_REVIEWED,
            id=cid,
            status="crash",
            score=0.0,
            description=spec.description,
            runtime_seconds=runtime,
            error="interrupted",
        )


ABORTED = "aborted by the human"


def record_aborted(campaign: Campaign, candidate: Candidate, result: RunResult) -> None:
    """A candidate the human killed (a second Ctrl-C) is its own outcome, not a crash.

    ``results.tsv`` keeps the reference's status set: the row is a ``discard`` with no score and
    the reason in its description; ``candidates.jsonl`` records the status ``aborted``. It never
    counts as a crash (so not towards the crash-cause literature trigger), and an aborted
    baseline is run again on resume (``baseline_to_rerun``).
    """
    spec = candidate.spec
    campaign.finalise(candidate, "aborted", result=result, error=f"{ABORTED} (the job was killed)")
    campaign.ledger.append_row(
        ResultRow(
            candidate.commit[:7],
            None,
            result.runtime_seconds,
            campaign.budget_label(),
            "discard",
            spec.target,
            f"{spec.description} [{ABORTED}]",
            f"runs/{candidate.id}",
        )
    )
    if candidate.commit != candidate.parent:
        campaign.repo.archive(candidate.id, candidate.commit)
    campaign.repo.remove_worktree(candidate.id)
    campaign.emit(
        EventType.CANDIDATE_REVIEWED,
        id=candidate.id,
        status="discard",
        outcome="aborted",
        score=None,
        description=f"{spec.description} [{ABORTED}]",
        runtime_seconds=result.runtime_seconds,
        error=ABORTED,
    )


def baseline_to_rerun(campaign: Campaign) -> CandidateSpec | None:
    """The baseline again, when every baseline run so far was aborted or crashed (the campaign
    stopped on the crash; the human fixed the task and resumed)."""
    records = campaign.final_records().values()
    baselines = [r for r in records if r.get("target") == "baseline"]
    if not baselines or any(r.get("status") not in ("aborted", "crash") for r in baselines):
        return None
    if any(r.get("id") in campaign.in_flight for r in baselines):
        return None
    last = baselines[-1]
    return CandidateSpec(last.get("description", "baseline"), "baseline", dict(last.get("args") or {}))


def stop_on_baseline_crash(campaign: Campaign, candidate: Candidate, status: str, error: str) -> None:
    """Every candidate is compared with the baseline: one that crashed means the task itself is
    broken (a stale job.py, missing data), so the campaign stops instead of running the rest."""
    if status != "crash" or candidate.spec.target != "baseline" or campaign.best_row() is not None:
        return
    first = (error or "no reason recorded").splitlines()[0][:200]
    campaign.stop_reason = (
        f"the baseline crashed: {first}; fix the task (afr task check {campaign.profile.name}), "
        f"then afr resume {campaign.tag}"
    )
    campaign.command(Command(CommandType.STOP, note=campaign.stop_reason))
