"""Where a campaign's time went: totals per phase over its candidates, and candidates per hour.

Shared by ``afr status`` and the report. Inside the NVFlare job the phases come from each
record (the runner reads them from NVFlare's log, engine/run/phases.py); around the job they
come from the journal's event times for each candidate:

    proposal       the proposer's call (``proposal_seconds`` of candidate_proposed)
    validation     proposed -> validated or rejected (worktree, edits, guard, commit)
    queue          validated (or approved by the human) -> started on a slot
    review         finished -> reviewed, less any confirmation
    confirmation   the first confirmation event -> reviewed (re-runs on the confirmation seeds)
"""

from __future__ import annotations

import time

from engine.control.events import Event, EventType

# (key, label) in the order a candidate lives them; the job's own phases are record timings.
PHASES = (
    ("proposal_seconds", "proposal"),
    ("validation_seconds", "validation"),
    ("queue_seconds", "queue"),
    ("nvflare_startup_seconds", "NVFlare start-up"),
    ("rounds_seconds", "rounds"),
    ("final_eval_seconds", "final evaluation"),
    ("shutdown_seconds", "shutdown"),
    ("review_seconds", "review"),
    ("confirmation_seconds", "confirmation"),
)
JOB_PHASES = ("nvflare_startup_seconds", "rounds_seconds", "final_eval_seconds", "shutdown_seconds")
SESSION_STARTS = (EventType.CAMPAIGN_STARTED, EventType.CAMPAIGN_RESUMED)


def engine_phases(events: list[Event]) -> dict[str, dict[str, float]]:
    """Candidate id -> seconds of each phase around its job, from the journal's event times."""
    first: dict[tuple[str, EventType], Event] = {}
    reviewed: dict[str, float] = {}
    approved: dict[str, float] = {}
    for event in events:
        cid = event.data.get("id")
        if not cid:
            continue
        first.setdefault((cid, event.type), event)
        if event.type is EventType.CANDIDATE_REVIEWED:
            reviewed[cid] = event.ts  # the last review counts (an override reviews again)
        elif event.type is EventType.DECISION and event.data.get("decision") == "approve":
            approved.setdefault(cid, event.ts)

    def at(cid: str, kind: EventType) -> float | None:
        event = first.get((cid, kind))
        return event.ts if event else None

    out: dict[str, dict[str, float]] = {}
    for (cid, kind), proposed in first.items():
        if kind is not EventType.CANDIDATE_PROPOSED:
            continue
        phases = {"proposal_seconds": float(proposed.data.get("proposal_seconds") or 0.0)}
        checked = at(cid, EventType.CANDIDATE_VALIDATED) or at(cid, EventType.CANDIDATE_REJECTED)
        if checked is not None:
            phases["validation_seconds"] = checked - proposed.ts
        started, finished = at(cid, EventType.CANDIDATE_STARTED), at(cid, EventType.CANDIDATE_FINISHED)
        ready = approved.get(cid, at(cid, EventType.CANDIDATE_VALIDATED))
        if started is not None and ready is not None:
            phases["queue_seconds"] = max(0.0, started - ready)
        if finished is not None and cid in reviewed:
            confirming = at(cid, EventType.CANDIDATE_CONFIRMING)
            phases["review_seconds"] = max(0.0, (confirming or reviewed[cid]) - finished)
            if confirming is not None:
                phases["confirmation_seconds"] = max(0.0, reviewed[cid] - confirming)
        out[cid] = phases
    return out


def session_seconds(events: list[Event], now: float | None = None) -> float:
    """Wall time the engine ran: each session from its start (or resume) to its last event, so a
    campaign resumed after a day of downtime is not charged the day. ``now`` extends the last one."""
    total, start, last = 0.0, None, None
    for event in events:
        if event.type in SESSION_STARTS:
            if start is not None and last is not None:
                total += last - start
            start = event.ts
        last = event.ts
    if start is not None and last is not None:
        total += max(last, now or last) - start
    return total


def time_totals(
    records: dict[str, dict], created: float | None, now: float | None = None, events: list[Event] | None = None
) -> dict:
    """Seconds per phase over every candidate, the finished ones' run time, the campaign's wall
    time, and finished candidates per wall hour. With the journal's ``events`` the phases around
    the job are split out and the wall time counts only the engine's sessions; without them the
    wall time runs from ``created`` to ``now``."""
    finished = [r for r in records.values() if r.get("runtime_seconds") is not None]
    phases = {
        key: round(sum(float((r.get("timings") or {}).get(key) or 0.0) for r in finished), 1)
        for key in (*JOB_PHASES, "engine_seconds")
    }
    around = engine_phases(events or [])
    for key, _ in PHASES:
        if key not in JOB_PHASES:
            phases[key] = round(sum(p.get(key, 0.0) for p in around.values()), 1)
    if events:
        wall = session_seconds(events, now)
    else:
        wall = max(0.0, (now or time.time()) - created) if created else 0.0
    return {
        "finished": len(finished),
        "run_seconds": round(sum(float(r["runtime_seconds"]) for r in finished), 1),
        "phase_seconds": phases,
        "wall_seconds": round(wall, 1),
        "candidates_per_hour": round(3600 * len(finished) / wall, 2) if wall > 0 else None,
    }


def phase_rows(totals: dict) -> list[tuple[str, float]]:
    """(label, seconds) per phase, in a candidate's order, for the report's table."""
    return [(label, totals["phase_seconds"].get(key, 0.0)) for key, label in PHASES]


def time_line(totals: dict) -> str:
    """One line for ``afr status``: throughput and the phases that took the time."""
    if not totals.get("finished"):
        return ""
    rate = totals.get("candidates_per_hour")
    parts = [f"{label} {seconds / 60:.1f} min" for label, seconds in phase_rows(totals)]
    head = f"{rate:.1f} candidates/hour" if rate else "time"
    return f"{head}; {totals['run_seconds'] / 60:.1f} min in jobs: " + ", ".join(parts)
