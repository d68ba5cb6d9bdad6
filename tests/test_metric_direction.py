"""A minimize-direction profile (Heart on log_loss) reports the right best everywhere: status,
list, the terminal and PNG plots, the report, compare and repeat verdicts (fake runner)."""

from __future__ import annotations

import json
import subprocess

import pytest
from evidence_helpers import SeededRunner
from fakes import FakeRunner

from afr.cli import main
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.evidence import runs as evidence
from engine.evidence.plots import running_best
from engine.profile import load_profile
from engine.run.runner import job_command
from engine.store.workspace import init_workspace

TAG = "loss-20261125"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root, _ = init_workspace(tmp_path_factory.mktemp("direction") / "ws")
    text = (root / "profiles" / "fed_heart_disease.toml").read_text()
    text = text.replace('name = "fed_heart_disease"', 'name = "heart_loss"', 1)
    text = text.replace(
        'name = "accuracy"\ndirection = "maximize"', 'name = "log_loss"\ndirection = "minimize"'
    )
    text = text.replace('"profiles/fed_heart_disease.toml"', '"profiles/heart_loss.toml"')
    (root / "profiles" / "heart_loss.toml").write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "heart_loss profile"], cwd=root, check=True)
    profile = load_profile(root, "heart_loss")
    assert profile.metric.name == "log_loss" and not profile.maximize
    campaign = Campaign(
        root, profile, TAG, CampaignOptions(max_candidates=10), ScriptedProposer(), run_fn=FakeRunner()
    )
    campaign.start()
    return root


def cli(root, *args):
    return main([*args, "--workspace", str(root)])


def scores(root):
    rows = evidence.open_campaign(root, TAG).rows
    return [r.score for r in rows if r.score is not None and r.status != "crash"]


def test_the_campaign_has_a_spread_and_keeps_lower_losses(workspace):
    values = scores(workspace)
    # a higher-is-better reading would pick another candidate
    assert max(values) > values[0] > min(values)
    kept = [r.score for r in evidence.open_campaign(workspace, TAG).rows if r.status == "keep"]
    assert kept == sorted(kept, reverse=True) and kept[-1] == min(values)


def test_runner_passes_the_profile_metric_and_direction(workspace, tmp_path):
    command = job_command(workspace, load_profile(workspace, "heart_loss"), {}, tmp_path, "sim", True)
    assert command[command.index("--metric") + 1] == "log_loss"
    assert command[command.index("--metric_direction") + 1] == "minimize"


def test_status_list_and_plot_report_the_minimum(workspace, capsys):
    best = min(scores(workspace))
    assert cli(workspace, "status", TAG, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["best"] == best and info["maximize"] is False
    assert cli(workspace, "list") == 0
    assert f"best {best:.4f}" in capsys.readouterr().out
    assert cli(workspace, "status", TAG, "--plot") == 0
    assert f"best {best:.4f}" in capsys.readouterr().out
    assert running_best(scores(workspace), maximize=False)[-1] == best


def test_repeat_report_and_compare_use_the_direction(workspace, monkeypatch, capsys):
    monkeypatch.setattr(evidence, "RUNNER", SeededRunner())
    campaign = evidence.open_campaign(workspace, TAG)
    top = campaign.top(1)[0]
    assert top["score"] == pytest.approx(min(scores(workspace)), abs=1e-6)
    assert cli(workspace, "repeat", TAG, "--top", "1", "--seeds", "42,43,44") == 0
    out = capsys.readouterr().out
    # the candidate's loss is lower than the baseline's at every seed: a gain, not a loss
    assert f"{top['id']} - c001 (paired over 3 seeds)" in out and "robust gain" in out
    assert cli(workspace, "compare", TAG, "--json") == 0
    (facts,) = json.loads(capsys.readouterr().out)
    assert facts["best"] == min(scores(workspace)) and facts["repeat_difference"]["mean"] > 0
    assert cli(workspace, "report", TAG, "--no-commit") == 0
    capsys.readouterr()
    text = (campaign.directory / "reports" / f"{TAG}-report.md").read_text()
    assert f"best: {min(scores(workspace)):.4f}" in text
    assert (campaign.directory / "reports" / "progress.png").read_bytes()[:4] == b"\x89PNG"
