"""The campaign's environment check: recorded at start, checked before each candidate.

A run that moves the workspace's ``main`` behind afr's back stops the campaign with a
one-line reason; afr's own keeps and checkpoints, and another campaign's branch, do not.
"""

from __future__ import annotations

import json

from fakes import FakeRunner

from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.campaign.status import summary
from engine.control.events import EventType
from engine.profile import load_profile
from engine.store.gitsafe import run_git
from engine.store.workspace import init_workspace

TAG = "envcheck-20261125"


def campaign(root, runner, candidates=6):
    profile = load_profile(root, "fed_heart_disease")
    engine = Campaign(
        root, profile, TAG, CampaignOptions(max_candidates=candidates), ScriptedProposer(), run_fn=runner
    )
    events = []
    engine.subscribe(events.append)
    return engine, events


class MovesMain(FakeRunner):
    """A run that rewrites the workspace's main (what a candidate without the sandbox could do)."""

    def __init__(self, root, at_call):
        super().__init__()
        self.root, self.at_call = root, at_call

    def __call__(self, root, profile, args, run_dir, **options):
        if len(self.calls) + 1 == self.at_call:
            tree = run_git(self.root, "rev-parse", "main^{tree}").stdout.decode().strip()
            forged = run_git(self.root, "commit-tree", tree, "-m", "forged").stdout.decode().strip()
            run_git(self.root, "update-ref", "refs/heads/main", forged)
        return super().__call__(root, profile, args, run_dir, **options)


def test_an_honest_campaign_passes_every_check_and_records_its_fingerprint(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    run_git(root, "branch", "autoresearch/other-campaign")
    engine, events = campaign(root, FakeRunner())
    engine.start()
    assert engine.state == "finished"
    meta = json.loads((engine.dir / "campaign.json").read_text())
    assert meta["fingerprint"]["heads"] and meta["sandbox"] in ("bwrap", "none")
    assert summary(root, TAG)["sandbox"] == "none"  # the fake runner reports no sandbox
    # Its keeps and checkpoints moved its own branch; the record followed.
    assert engine.envcheck.problem() is None


def test_a_branch_moved_behind_afr_stops_the_campaign_with_a_reason(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    runner = MovesMain(root, at_call=2)
    engine, events = campaign(root, runner)
    engine.start()
    stopped = [e for e in events if e.type is EventType.STOPPED]
    assert stopped and stopped[-1].data["reason"].startswith(
        "environment check: workspace branch refs/heads/main"
    )
    # Nothing proposed after the check failed (one proposed ahead while the second ran may finish).
    assert len(runner.calls) <= 3 and len(engine.ledger.rows()) <= 3
    status = summary(root, TAG)
    assert status["state"] == "stopped" and "refs/heads/main moved outside afr" in status["reason"]


def test_accepting_a_changed_environment_records_it_and_keeps_the_old_difference(tmp_path):
    from engine.campaign.envcheck import accept_environment, resumed_check

    root, _ = init_workspace(tmp_path / "ws")
    engine, _ = campaign(root, FakeRunner(), candidates=2)
    engine.start()
    path = engine.dir / "campaign.json"
    meta = json.loads(path.read_text())
    # As if a package had been installed since: the record lacks one site-packages entry.
    meta["fingerprint"]["site_listing"].pop(sorted(meta["fingerprint"]["site_listing"])[0])
    path.write_text(json.dumps(meta))
    branch = f"autoresearch/{TAG}"
    problem = resumed_check(root, branch, meta).problem()
    assert problem and "site-packages" in problem
    assert accept_environment(root, engine.dir, branch) == problem
    accepted = json.loads(path.read_text())
    assert accepted["environment_accepted"][-1]["was"] == problem
    assert resumed_check(root, branch, accepted).problem() is None
    assert accept_environment(root, engine.dir, branch) is None  # nothing left to accept
