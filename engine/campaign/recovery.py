"""What the human and a restarted engine do to candidates already reviewed or cut short."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from engine.agent.base import CandidateSpec
from engine.campaign.candidate import Candidate
from engine.control.events import Command, EventType
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
        campaign.repo.keep(record["commit"], f"keep {command.candidate} (human override): {command.note}")
    campaign.ledger.append_candidate(
        {**record, "status": status, "human": {"decision": f"override:{status}", "note": command.note}}
    )
    campaign.emit(EventType.DECISION, id=command.candidate, decision=f"override:{status}", note=command.note)


def recover_interrupted(campaign: Campaign) -> None:
    """A candidate that was running when the engine died is recorded as a crash."""
    confirming = set(campaign.confirmer.interrupted())  # continued by the confirmer, not crashed
    for cid, info in campaign.journal.unfinished(set(campaign.final_records()) | confirming).items():
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
        campaign.finalise(candidate, "crash", result=result, error="interrupted")
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
