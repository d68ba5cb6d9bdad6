"""The reference keep/discard rule.

After a batch, its best candidate is kept only if it beats the best earlier non-crash score
by more than ``min_delta``; every other scored candidate of the batch is discarded. The first
scored candidate of a campaign (the baseline) is kept: there is nothing earlier to beat.
"""

from __future__ import annotations

from engine.store.ledger import ResultRow


def better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def best_score(rows: list[ResultRow], maximize: bool) -> float | None:
    """Best score among earlier scored, non-crash rows (literature rows have no score)."""
    scores = [
        row.score for row in rows if row.score is not None and row.status not in ("crash", "literature")
    ]
    if not scores:
        return None
    return max(scores) if maximize else min(scores)


def review_batch(
    scores: dict[str, float | None], earlier: list[ResultRow], maximize: bool, min_delta: float
) -> dict[str, str]:
    """Status per candidate id: ``keep`` for at most one, ``discard`` for other scored ones,
    ``crash`` where the score is None."""
    statuses = {cid: "crash" for cid, score in scores.items() if score is None}
    scored = {cid: score for cid, score in scores.items() if score is not None}
    if not scored:
        return statuses
    pick = max if maximize else min
    winner = pick(scored, key=lambda cid: scored[cid])
    reference = best_score(earlier, maximize)
    if reference is None:
        keep = True
    else:
        margin = scored[winner] - reference if maximize else reference - scored[winner]
        keep = margin > min_delta
    for cid in scored:
        statuses[cid] = "keep" if keep and cid == winner else "discard"
    return statuses
