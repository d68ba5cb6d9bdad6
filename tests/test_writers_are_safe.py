"""What afr writes never carries a provider key, and afr's own git never runs a planted hook."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from fakes import FakeRunner

from engine.agent.base import CandidateSpec
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.profile import load_profile
from engine.store import redact
from engine.store.workspace import CampaignRepo, init_workspace

SENTINEL = "sk-afr-sentinel-0123456789abcdef"


@pytest.fixture
def workspace(tmp_path):
    return init_workspace(tmp_path / "ws")[0]


class LeakyProposer(ScriptedProposer):
    """Puts the key where an agent might: a description, a note, an edited file."""

    def propose(self, context):
        spec = super().propose(context)
        if context.records:
            spec.description = f"{spec.description} (key {SENTINEL})"
        return spec


class LeakyRunner(FakeRunner):
    def __call__(self, root, profile, args, run_dir, **options):
        result = super().__call__(root, profile, args, run_dir, **options)
        if options.get("on_line"):
            options["on_line"](f"site-1 round 0: Error leaking {SENTINEL}")
        result.error = f"boom {SENTINEL}"
        return result


def test_a_key_never_reaches_the_ledgers_the_journal_or_commits(workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    redact.default_redactor(refresh=True)
    try:
        profile = load_profile(workspace, "fed_heart_disease")
        campaign = Campaign(
            workspace,
            profile,
            "leak-20261125",
            CampaignOptions(max_candidates=3),
            LeakyProposer(),
            run_fn=LeakyRunner(),
        )
        campaign.start()
        written = [p for p in campaign.dir.rglob("*") if p.is_file()]
        assert any(p.name == "journal.jsonl" for p in written)
        for path in written:
            assert SENTINEL not in path.read_text(errors="replace"), path
        assert "[REDACTED:OPENAI_API_KEY]" in (campaign.dir / "results.tsv").read_text()
        log = campaign.repo.repo.git.log("--all", "--format=%B")
        assert SENTINEL not in log
    finally:
        monkeypatch.delenv("OPENAI_API_KEY")
        redact.default_redactor(refresh=True)


def test_a_planted_hook_does_not_fire_on_afrs_commits(workspace):
    marker = workspace / "hook-fired"
    hooks = workspace / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("post-commit", "pre-commit", "post-checkout", "reference-transaction"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    repo = CampaignRepo(workspace, "hooks-20261125")
    parent = repo.start()
    tree = repo.worktree_for("c001", parent)
    (tree / "tasks" / "shared" / "training.py").write_text("# changed\n")
    commit = repo.commit_candidate(tree, CandidateSpec("x", "code", {}).description)
    assert commit and commit != parent
    repo.keep(commit, "keep c001")
    repo.remove_worktree("c001")
    assert not marker.exists(), marker.read_text()


def test_a_shadow_module_in_the_workspace_is_never_imported_by_afr(workspace):
    for name in ("psutil", "rich", "git", "numpy"):
        (workspace / f"{name}.py").write_text(f'raise SystemExit("shadow {name} imported")\n')
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "list"], cwd=workspace, capture_output=True, text=True, timeout=120
    )
    assert "shadow" not in done.stdout + done.stderr
    assert done.returncode == 0 and "no campaigns yet" in done.stdout
