"""Shared by the evidence and report tests: a finished fake campaign and a seed-aware fake runner."""

from __future__ import annotations

from pathlib import Path

from fakes import FakeRunner

from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.profile import load_profile
from engine.run.runner import RunResult

TAG = "evidence-20261122"


class SeededRunner(FakeRunner):
    """FakeRunner whose score moves with the seed and drops on the held-out subset.

    The seed effect is the same for every candidate (a shared data/initialisation draw), so
    paired differences are much tighter than the per-candidate spreads, as in real repeats.
    """

    SEED_EFFECT = {42: 0.0, 43: 0.012, 44: -0.008, 45: 0.004, 46: -0.015, 47: 0.007}

    def __init__(self, heldout_drop: float = 0.005, fail: set | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heldout_drop = heldout_drop
        self.fail = fail or set()  # (candidate-ish run_dir name) that crash

    def __call__(self, root, profile, args, run_dir: Path, **options) -> RunResult:
        result = super().__call__(root, profile, args, run_dir, **options)
        if run_dir.name in self.fail:
            return RunResult("crash", 0.0, {}, 0.0, result.log_path, None, 1, ["boom"], "RuntimeError: boom")
        if result.status != "ok":
            return result
        seed = options.get("seed") or profile.budget.seed
        sign = 1.0 if profile.maximize else -1.0  # effects in the profile's better direction
        score = result.score + sign * self.SEED_EFFECT.get(seed, 0.0) * (1.3 if args else 1.0)
        if options.get("subset") == "heldout":
            score -= sign * self.heldout_drop * (2 if args else 1)
        result.score = score
        result.per_site = {"site-1": score}
        return result


def finished_campaign(root: Path, max_candidates: int = 8, smoke: bool = False) -> Campaign:
    """A scripted campaign with the plain FakeRunner: c001 baseline, FedAdam kept at c003."""
    campaign = Campaign(
        root,
        load_profile(root, "fed_heart_disease"),
        TAG,
        CampaignOptions(max_candidates=max_candidates, smoke=smoke, confirm=False),
        ScriptedProposer(),
        run_fn=FakeRunner(),
    )
    campaign.start()
    return campaign
