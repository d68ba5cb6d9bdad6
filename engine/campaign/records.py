"""Row labels and summaries the ledger and the events share (the record itself: ``candidate.py``)."""

from __future__ import annotations

from engine.profile import Profile
from engine.store.ledger import ResultRow


def budget_label(profile: Profile, smoke: bool) -> str:
    budget = profile.budget
    rounds = profile.smoke.get("num_rounds", budget.num_rounds) if smoke else budget.num_rounds
    return f"{'smoke:' if smoke else ''}clients={budget.n_clients};rounds={rounds}"


def best_summary(rows: list[ResultRow], maximize: bool) -> dict | None:
    """Baseline and best of the scored, non-crash rows (for events and views).

    The best is the best *kept* row: with confirmation a discard can carry a higher campaign-seed
    score than any keep (a lucky seed that did not confirm), and it is not the campaign's best.
    """
    scored = [r for r in rows if r.score is not None and r.status not in ("crash", "literature")]
    if not scored:
        return None
    kept = [r for r in scored if r.status == "keep"]
    best = max(kept or scored, key=lambda r: r.score if maximize else -r.score)
    return {
        "score": best.score,
        "description": best.description,
        "artifacts": best.artifacts,
        "baseline": scored[0].score,
    }
