"""Offline code mechanisms: each bundled patch applies to both bundled tasks and passes the same guard
as an agent's edits; a TPE campaign proposes them through the edit path, the diff and manual approval."""

from __future__ import annotations

import pytest
from fakes import FakeRunner
from test_campaign import make, workspace  # noqa: F401 (fixture)

from engine.agent.mechanisms import MECHANISMS, PatchError, available, edits_for
from engine.agent.tpe import TPEProposer
from engine.control.events import Command, CommandType, EventType
from engine.guard.validate import apply_edits, protected_hashes, validate
from engine.profile import load_profile
from engine.store.workspace import CampaignRepo, changed_paths


@pytest.mark.parametrize("profile_name", ["fed_heart_disease", "leaf_synthetic"])
def test_every_mechanism_passes_the_guard_alone_and_together(workspace, profile_name):  # noqa: F811
    profile = load_profile(workspace, profile_name)
    assert {m.name for m in available(profile)} == {m.name for m in MECHANISMS}
    hashes = protected_hashes(workspace, profile)
    repo = CampaignRepo(workspace, "mech-20261125")
    head = repo.start()
    for index, group in enumerate([[m] for m in MECHANISMS] + [list(MECHANISMS)]):
        worktree = repo.worktree_for(f"m{index}", head)
        edits = edits_for(group, profile, workspace, head)
        assert edits and not apply_edits(worktree, edits, profile)
        args = {}
        for mechanism in group:
            args.update(mechanism.args)
        if len(group) > 1:
            args["model_arch"] = "quadlin"
        verdict = validate(worktree, changed_paths(worktree), profile, args, hashes)
        assert verdict.ok, (group, verdict.checks)
        # A file that already has the mechanism gets no second copy of it.
        repo.commit_candidate(worktree, f"m{index}")
        assert edits_for(group, profile, worktree, None) == {}
        repo.remove_worktree(f"m{index}")


def test_a_patch_whose_anchor_is_gone_is_refused_in_one_line():
    from engine.agent.mechanisms import by_name

    with pytest.raises(PatchError, match="anchor"):
        by_name("nesterov").patch("def make_optimizer():\n    pass\n")


def test_tpe_code_candidates_go_through_the_diff_and_manual_approval(workspace):  # noqa: F811
    runner = FakeRunner()
    campaign, events = make(workspace, runner, TPEProposer(), max_candidates=5, approval="manual")
    diffs = {}

    def approve(event):
        if event.type is EventType.CANDIDATE_AWAITING_APPROVAL:
            diffs[event.data["id"]] = event.data["diff"]
            campaign.command(Command(CommandType.APPROVE, event.data["id"], note="ok"))

    campaign.subscribe(approve)
    campaign.start()
    records = campaign.final_records()
    code = [r for r in records.values() if r.get("mechanisms") and r["edited_files"]]
    assert code, [r["description"] for r in records.values()]
    for record in code:
        assert record["commit"] != record["parent"] and record["status"] in ("keep", "discard")
        diff = diffs[record["id"]]
        assert any(f"+++ b/{path}" in diff for path in record["edited_files"])
        assert "quadlin" in diff or "mlp8tanh" in diff or "afr mechanism" in diff
        assert record["target"] in ("architecture", "code")
    # The fake runner ran each code candidate in its own worktree, at its own commit.
    ran = {str(call["root"]) for call in runner.calls}
    assert all(any(r["id"] in root for root in ran) for r in code)
