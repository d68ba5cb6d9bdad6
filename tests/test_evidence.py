"""afr repeat / afr heldout on a finished fake campaign: jobs, evidence.tsv, statistics, errors."""

from __future__ import annotations

import pytest
from evidence_helpers import TAG, SeededRunner, finished_campaign

from afr.cli import main
from engine.evidence import runs as evidence
from engine.evidence.stats import summarize
from engine.store.workspace import init_workspace


@pytest.fixture
def workspace(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    finished_campaign(root)
    return root


@pytest.fixture
def runner(monkeypatch):
    fake = SeededRunner()
    monkeypatch.setattr(evidence, "RUNNER", fake)
    return fake


def run_cli(root, *args):
    return main([*args, "--workspace", str(root)])


def test_repeat_runs_top_and_baseline_over_matched_seeds(workspace, runner, capsys):
    assert run_cli(workspace, "repeat", TAG, "--top", "1", "--seeds", "42,43,44,45,46") == 0
    campaign = evidence.open_campaign(workspace, TAG)
    best = campaign.top(1)[0]
    rows = campaign.evidence.rows()
    assert len(rows) == 10
    assert {(r.candidate, r.seed) for r in rows} == {
        (cid, s) for cid in ("c001", best["id"]) for s in (42, 43, 44, 45, 46)
    }
    assert all(r.subset == "validation" and r.status == "ok" for r in rows)
    # the runner got the candidate's own args and commit, the seed, and nothing else changed
    for call in runner.calls:
        assert call["subset"] == "validation" and call["seed"] in (42, 43, 44, 45, 46)
        assert call["root"].name.startswith("evidence-c")
    assert {tuple(sorted(c["args"].items())) for c in runner.calls} == {
        (),
        tuple(sorted(best["args"].items())),
    }
    assert not any((campaign.directory / "worktrees").iterdir())
    out = capsys.readouterr().out
    base = summarize([r.score for r in rows if r.candidate == "c001"])
    assert f"{base.mean:.4f}" in out and f"[{base.low:.4f}, {base.high:.4f}]" in out
    assert f"{best['id']} - c001 (paired over 5 seeds)" in out and "robust gain" in out


def test_repeat_resumes_and_reruns_only_failed_runs(workspace, monkeypatch, capsys):
    first = SeededRunner(fail={"c001-validation-seed43"})
    monkeypatch.setattr(evidence, "RUNNER", first)
    assert run_cli(workspace, "repeat", "--seeds", "42,43,44") == 0
    assert "1 failed" in capsys.readouterr().out
    second = SeededRunner()
    monkeypatch.setattr(evidence, "RUNNER", second)
    assert run_cli(workspace, "repeat", "--seeds", "42,43,44") == 0
    assert [c["run_dir"].name for c in second.calls] == ["c001-validation-seed43"]
    assert "5 of 6 runs already in evidence.tsv" in capsys.readouterr().out
    rows = evidence.open_campaign(workspace, TAG).evidence.rows()
    assert len(rows) == 7  # the failed row stays, superseded by the rerun
    latest = evidence.evidence_by_candidate(rows)
    assert all(e.failures == 0 and e.summary.n == 3 for e in latest)


def test_heldout_scores_selected_and_baseline_on_the_heldout_subset(workspace, runner, capsys):
    assert run_cli(workspace, "heldout") == 0
    assert [c["subset"] for c in runner.calls] == ["heldout", "heldout"]
    assert [c["seed"] for c in runner.calls] == [42, 42]
    out = capsys.readouterr().out
    assert "held-out" in out and "survives" in out
    rows = evidence.open_campaign(workspace, TAG).evidence.rows()
    assert [(r.role, r.subset) for r in rows] == [("baseline", "heldout"), ("selected", "heldout")]


def test_heldout_reports_a_gain_that_does_not_survive(workspace, monkeypatch, capsys):
    monkeypatch.setattr(evidence, "RUNNER", SeededRunner(heldout_drop=0.2))
    assert run_cli(workspace, "heldout") == 0
    assert "does NOT survive" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["repeat", "nope-20261122"], "no campaign 'nope-20261122'"),
        (["repeat", "--seeds", "42,x"], "'x' is not an integer"),
        (["repeat", "--seeds", "42"], "at least 2 seeds"),
        (["repeat", "--seeds", "42,42"], "repeats a seed"),
        (["heldout", "--candidate", "c999"], "no scored candidate 'c999'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workspace, runner, capsys, args, message):
    assert run_cli(workspace, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert runner.calls == []


def test_malformed_evidence_is_refused_and_kept(workspace, runner, capsys):
    path = evidence.open_campaign(workspace, TAG).evidence.path
    path.write_text(
        "\t".join(evidence.EVIDENCE_HEADER) + "\nc001\tbaseline\tvalidation\tfortytwo\tok\t0.7\t1\tabc\tx\n"
    )
    before = path.read_text()
    assert run_cli(workspace, "repeat") == 2
    assert "line 2: seed, score or runtime_seconds is not a number" in capsys.readouterr().err
    assert path.read_text() == before and runner.calls == []


def test_a_campaign_without_a_kept_candidate_is_refused(tmp_path, runner, capsys):
    root, _ = init_workspace(tmp_path / "ws")
    finished_campaign(root, max_candidates=1)
    assert run_cli(root, "repeat") == 2
    assert "no kept candidate besides the baseline" in capsys.readouterr().err


def test_heldout_needs_a_profile_with_a_heldout_subset(tmp_path, runner, capsys):
    root, _ = init_workspace(tmp_path / "ws")
    profile = root / "profiles" / "fed_heart_disease.toml"
    text = profile.read_text()
    profile.write_text(text[: text.index("# Half of each client")])
    finished_campaign(root)
    assert run_cli(root, "heldout") == 2
    assert "declares no [heldout]" in capsys.readouterr().err


def test_compare_puts_campaigns_side_by_side(workspace, runner, capsys):
    assert run_cli(workspace, "repeat", "--seeds", "42,43,44") == 0
    assert run_cli(workspace, "heldout") == 0
    capsys.readouterr()
    assert run_cli(workspace, "compare", TAG, "--json") == 0
    import json

    (facts,) = json.loads(capsys.readouterr().out)
    campaign = evidence.open_campaign(workspace, TAG)
    rows = campaign.rows
    assert facts["baseline"] == rows[0].score
    assert facts["best"] == max(r.score for r in rows if r.status != "crash")
    assert facts["kept"] == sum(r.status == "keep" for r in rows)
    assert facts["repeat_difference"]["n"] == 3 and facts["heldout"]["survives"] is True
    assert facts["llm_models"] == [] and facts["llm_cost_usd"] == 0
    assert run_cli(workspace, "compare", TAG) == 0
    table = capsys.readouterr().out
    assert (
        "no LLM" in table and f"{facts['repeat']['mean']:.4f} ± {facts['repeat']['half_width']:.4f}" in table
    )
    assert run_cli(workspace, "compare", TAG, TAG) == 2
    assert run_cli(workspace, "compare", "nope-20261122") == 2


def test_run_match_takes_the_campaigns_profile_cap_and_budget(workspace, monkeypatch, capsys):
    from engine.campaign import loop as campaign_module

    started = {}

    def fake_drive(campaign, *_args, **_kwargs):
        started.update(options=campaign.options, profile=campaign.profile.name, tag=campaign.tag)
        return 0

    monkeypatch.setattr("afr.campaign_commands._drive", fake_drive)
    assert campaign_module.CampaignOptions(match="x").match == "x"
    tag = "control-20261122"
    assert run_cli(workspace, "run", "--match", TAG, "--tag", tag, "--max-candidates", "99") == 0
    assert started["options"].max_candidates == 8 and started["options"].match == TAG
    assert started["options"].proposer == "scripted" and started["profile"] == "fed_heart_disease"
    assert "same-budget control of" in capsys.readouterr().out
    assert run_cli(workspace, "run", "--match", TAG, "--proposer", "llm") == 2
    assert run_cli(workspace, "run", "--match", "nope-20261122") == 2
    assert run_cli(workspace, "run", "--match", TAG, "--profile", "leaf_synthetic") == 2
    profile = workspace / "profiles" / "fed_heart_disease.toml"
    profile.write_text(profile.read_text().replace("num_rounds = 15", "num_rounds = 16"))
    assert run_cli(workspace, "run", "--match", TAG) == 2
    assert "[budget] changed since" in capsys.readouterr().err


def test_ctrl_c_records_nothing_for_the_interrupted_run(workspace, monkeypatch, capsys):
    import os
    import signal
    import time

    # a terminal's SIGINT default, even under a background shell that ignores it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    class Interrupting(SeededRunner):
        def __call__(self, root, profile, args, run_dir, **options):
            if len(self.calls) == 1:  # the second run: Ctrl-C while it runs
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            return super().__call__(root, profile, args, run_dir, **options)

    fake = Interrupting()
    monkeypatch.setattr(evidence, "RUNNER", fake)
    try:
        assert run_cli(workspace, "repeat", "--seeds", "42,43,44") == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    campaign = evidence.open_campaign(workspace, TAG)
    assert [(r.candidate, r.seed) for r in campaign.evidence.rows()] == [("c001", 42)]
    assert len(fake.calls) == 2  # nothing new started after the interrupt
    assert not any((campaign.directory / "worktrees").iterdir())
    monkeypatch.setattr(evidence, "RUNNER", SeededRunner())
    assert run_cli(workspace, "repeat", "--seeds", "42,43,44") == 0
    assert len(evidence.open_campaign(workspace, TAG).evidence.rows()) == 6


def test_parallel_width_and_gpu_pinning_apply_to_evidence_runs(workspace):
    import threading

    class Counting(SeededRunner):
        def __init__(self):
            super().__init__(delay=1.0)  # long enough to overlap even when git is slow
            self.lock, self.running, self.most = threading.Lock(), 0, 0

        def __call__(self, *args, **options):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                return super().__call__(*args, **options)
            finally:
                with self.lock:
                    self.running -= 1

    runner = Counting()
    campaign = evidence.open_campaign(workspace, TAG)
    jobs = evidence.repeat_jobs(campaign, 1, [42, 43])
    rows = evidence.run_jobs(campaign, jobs, runner, parallel=2, gpus=["0", "1"], report=lambda line: None)
    assert len(rows) == 4 and all(r.status == "ok" for r in rows)
    assert runner.most == 2  # two at a time, never more
    assert sorted(c["gpu"] for c in runner.calls) == ["0", "0", "1", "1"]
