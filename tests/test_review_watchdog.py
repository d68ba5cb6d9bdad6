"""The reference keep/discard rule and plateau watchdog."""

from __future__ import annotations

from engine.agent.literature import search, watchdog
from engine.campaign.review import review_batch
from engine.store.ledger import ResultRow


def r(score, status="discard"):
    return ResultRow("c", score, 1.0, "b", status, "scalar", "d", "")


def test_first_scored_candidate_is_kept():
    assert review_batch({"c001": 0.6}, [], True, 0.0005) == {"c001": "keep"}


def test_only_the_batch_best_is_kept_and_only_by_more_than_min_delta():
    earlier = [r(0.70, "keep"), r(0.0, "crash")]
    assert review_batch({"a": 0.7004, "b": 0.69}, earlier, True, 0.0005) == {"a": "discard", "b": "discard"}
    assert review_batch({"a": 0.7006, "b": 0.71, "c": None}, earlier, True, 0.0005) == {
        "a": "discard",
        "b": "keep",
        "c": "crash",
    }


def test_minimising_metrics_keep_the_lowest():
    assert review_batch({"a": 0.30, "b": 0.25}, [r(0.3, "keep")], False, 0.01) == {
        "a": "discard",
        "b": "keep",
    }


def test_crash_scores_never_count_as_best():
    # A crash row carries score 0.0; against a minimised metric it must not become "best".
    assert review_batch({"a": 0.2}, [r(0.3, "keep"), r(0.0, "crash")], False, 0.01) == {"a": "keep"}


def test_watchdog_counts_since_last_material_improvement_or_literature():
    rows = [r(0.70, "keep")] + [r(0.6995)] * 4
    state = watchdog(rows, 4, 0.0005)
    assert (
        state.recommend_literature
        and state.scored_since_reset == 4
        and state.reset_source == "material_improvement"
    )
    rows.append(ResultRow("c", None, 5.0, "literature_loop", "literature", "literature", "review", ""))
    assert not watchdog(rows, 4, 0.0005).recommend_literature
    assert watchdog(rows, 4, 0.0005).reset_source == "literature"
    rows += [r(0.0, "crash")] * 5 + [r(0.6)] * 3
    assert watchdog(rows, 4, 0.0005).scored_since_reset == 3  # crashes do not count
    rows.append(r(0.71, "keep"))
    assert watchdog(rows, 4, 0.0005).scored_since_reset == 0


def test_bibliography_search_finds_mechanisms_with_sources():
    hits = search("client drift under heterogeneous data")
    assert {h.key for h in hits} >= {"fedprox", "scaffold"}
    assert all(h.source.startswith("arXiv:") for h in hits)
