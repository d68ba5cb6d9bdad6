"""Red team through the real path: candidates that try to forge their score.

They run in the shared red-team campaign (``tests/redteam_campaign.py``: ``Campaign`` with the
real ``run_job`` on a real workspace, real NVFlare runs), scripted ``CandidateSpec(edits=...)``
after the baseline: a forged evaluate branch, rewritten cross-site results and hidden buffers.
Each attack must end refused, or run and scored honestly by afr's evaluator, or ``crash`` with
its reason; in every case the protected hashes are unchanged and no process of a run is left.
The workspace's protected ``scoring.py`` carries a side effect that writes a marker when
imported by *this* process: the engine must never import it (the jobs themselves still use it
to print their score).
"""

from __future__ import annotations

import json

import pytest

from engine.guard.validate import protected_hashes
from engine.run.runner import processes_of_run
from engine.run.sandbox import detect_sandbox

pytestmark = pytest.mark.nvflare


def test_the_honest_baseline_is_scored_by_the_evaluator(redteam):
    baseline = redteam.records["baseline"]
    assert baseline["status"] == "keep", baseline["error"]
    evaluator = baseline["evaluator"]
    assert evaluator["score"] == pytest.approx(baseline["score"])
    assert evaluator["per_site"] == baseline["per_site"]
    for site, score in evaluator["reported"].items():
        assert score == pytest.approx(evaluator["per_site"][site], abs=1e-4)
    assert evaluator["counts"]["total"] == 14
    assert baseline["sandbox"] == detect_sandbox() == redteam.summary["sandbox"]


def test_a_forged_evaluate_branch_is_a_score_mismatch(redteam):
    record = redteam.records["forged evaluate branch"]
    assert record["status"] == "crash"
    assert record["error"].startswith("score mismatch:"), record["error"]
    # afr's own score of the model is the baseline's (same training): the forgery bought nothing.
    assert record["evaluator"]["score"] == pytest.approx(redteam.records["baseline"]["score"], abs=1e-6)


def test_rewritten_cross_site_results_are_a_score_mismatch(redteam):
    record = redteam.records["forged cross-site results"]
    # A lean run stops the job once the result is complete and keeps the first complete file, so
    # the forgery may never land; either way the score of record is afr's evaluator's, never 0.99.
    if record["status"] == "crash":
        assert record["error"].startswith("score mismatch:"), record["error"]
    else:
        assert record["score"] == pytest.approx(record["evaluator"]["score"]) and record["score"] < 0.99


def test_hidden_buffers_are_refused(redteam):
    record = redteam.records["hidden buffers"]
    assert record["status"] in ("crash", "rejected")
    assert "over the cap" in record["error"], record["error"]


def test_the_engine_never_imported_the_worktrees_scoring_py(redteam):
    assert not redteam.marker.exists()


def test_protected_hashes_unchanged_and_no_process_left(redteam):
    assert protected_hashes(redteam.root, redteam.profile) == redteam.hashes
    meta = json.loads((redteam.campaign_dir / "campaign.json").read_text())
    assert meta["protected_hashes"] == redteam.hashes
    assert redteam.tokens
    for token in redteam.tokens:
        assert processes_of_run(token) == []
    # GitPython's cat-file helpers of this test process's own Repo objects are not the run's.
    assert not redteam.left


def test_every_kept_score_is_the_evaluators(redteam):
    for record in redteam.records.values():
        if record["status"] == "keep":
            assert record["score"] < 0.99
            assert record["evaluator"]["score"] == pytest.approx(record["score"])
