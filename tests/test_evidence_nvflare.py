"""The held-out check on real NVFlare jobs (smoke budget): the subset reaches every client process."""

from __future__ import annotations

import re

import pytest
from evidence_helpers import TAG, finished_campaign

from afr.cli import main
from engine.evidence.runs import open_campaign
from engine.run.runner import evaluation_environment
from engine.store.workspace import init_workspace

pytestmark = pytest.mark.nvflare


def test_heldout_runs_real_jobs_scored_on_the_heldout_half(tmp_path, monkeypatch, capsys):
    root, _ = init_workspace(tmp_path / "ws")
    finished_campaign(root, max_candidates=3, smoke=True)  # fake scores pick the candidate; runs are real
    assert main(["heldout", TAG, "--workspace", str(root)]) == 0
    assert "survive" in capsys.readouterr().out
    campaign = open_campaign(root, TAG)
    rows = campaign.evidence.rows()
    assert [(r.candidate, r.status) for r in rows] == [("c001", "ok"), (campaign.top(1)[0]["id"], "ok")]
    assert all(0 < r.score <= 1 for r in rows)
    # The job only ever sees its validation view, never a held-out row: afr's evaluator scores the
    # held-out rows outside the sandbox (sizes from the protected split itself).
    for key, value in evaluation_environment(campaign.profile, "validation").items():
        monkeypatch.setenv(key, value)
    from tasks.fed_heart_disease.data import load_site

    expected = {f"site-{i}": len(load_site(f"site-{i}").test.labels) for i in range(1, 5)}
    for row in rows:
        log = (campaign.directory / row.run_dir / "job.log").read_text()
        seen = dict(re.findall(r"(site-\d) \(\w+\): seed=\d+ train=\d+ test=(\d+)", log))
        assert {site: int(n) for site, n in seen.items()} == expected
    assert not any((campaign.directory / "worktrees").iterdir())
