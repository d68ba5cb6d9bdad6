"""Manual approval: a validated candidate waits for the human's decision before it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.campaign.candidate import Candidate
from engine.control.events import CommandType, EventType

if TYPE_CHECKING:
    from engine.campaign.loop import Campaign


def await_approval(campaign: Campaign, candidate: Candidate) -> bool:
    """In manual mode, wait for the human's approve or reject; True when the candidate may run."""
    if campaign.approval != "manual":
        return True
    cid = candidate.id
    with campaign._cond:
        campaign.awaiting[cid] = candidate
        campaign.set_state("awaiting_approval")
        campaign.emit(
            EventType.CANDIDATE_AWAITING_APPROVAL,
            id=cid,
            description=candidate.spec.description,
            args=candidate.spec.args,
            diff=candidate.diff,
            checks=candidate.validation,
        )
        while cid not in campaign.decisions and not campaign.stop_requested and campaign.approval == "manual":
            campaign._cond.wait(timeout=1.0)
        decision = campaign.decisions.pop(cid, None)
        campaign.awaiting.pop(cid, None)
        campaign.set_state("running")
    if decision is None and campaign.approval == "auto" and not campaign.stop_requested:
        return True
    if decision is None or decision.type is CommandType.REJECT:
        note = decision.note if decision else "campaign stopped before a decision"
        if decision:
            campaign.notes.append(f"{cid} rejected: {note}")
        campaign.emit(EventType.DECISION, id=cid, decision="reject", note=note)
        campaign.finalise(
            candidate,
            "rejected",
            error=f"rejected by the human: {note}",
            human={"decision": "reject", "note": note},
        )
        campaign.repo.remove_worktree(cid)
        return False
    candidate.human = {"decision": "approve", "note": decision.note}
    campaign.emit(EventType.DECISION, id=cid, decision="approve", note=decision.note)
    return True
