"""The human's gate in manual approval mode: a candidate waits with its diff until approved or rejected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.campaign.candidate import Candidate
from engine.control.events import CommandType, EventType

if TYPE_CHECKING:
    from engine.campaign.loop import Campaign


def approved(campaign: Campaign, candidate: Candidate) -> bool:
    """In manual mode, wait for the human's decision (reviewing finished candidates meanwhile)."""
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
    while True:
        with campaign._cond:
            if cid in campaign.decisions or campaign.stop_requested or campaign.approval != "manual":
                decision = campaign.decisions.pop(cid, None)
                campaign.awaiting.pop(cid, None)
                campaign.set_state("running")
                break
            campaign._cond.wait(timeout=0.5)
        campaign.review(campaign.slots.finished())  # candidates keep finishing while the human reads
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
