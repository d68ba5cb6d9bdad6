"""afr report: sections, the committed files, and every number traced to results.tsv / evidence.tsv."""

from __future__ import annotations

import re
import subprocess
import sys

import git
import numpy as np
import pytest
from evidence_helpers import SeededRunner
from fakes import FakeRunner

from afr.cli import main
from engine.agent.base import CandidateSpec
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import Command, CommandType
from engine.evidence import runs as evidence
from engine.evidence.runs import open_campaign
from engine.profile import load_profile
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

scipy_stats = pytest.importorskip("scipy.stats")
TAG = "report-20261122"
SECTIONS = [
    "## Summary",
    "## Progress",
    "## Best candidate",
    "## Improvement path",
    "## Mechanism attribution",
    "## Repeats and held-out",
    "## Controls",
    "## Runtime and reliability",
    "## Agent telemetry",
    "## Integrity",
    "## Null or worse ideas",
    "## Recommended next experiments",
]


class Specs(ScriptedProposer):
    name = "list"

    def __init__(self, specs):
        self.specs = list(specs)

    def propose(self, context):
        return self.specs.pop(0) if self.specs else super().propose(context)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A campaign with a kept code change citing a source, a kept scalar change, a crash and a literature row."""
    root, _ = init_workspace(tmp_path / "ws")
    client = (root / "tasks/fed_heart_disease/client.py").read_text()
    edited = client.replace(
        "loss_fn = torch.nn.BCEWithLogitsLoss()",
        "loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(0.8))",
    )
    specs = [
        CandidateSpec("baseline", "baseline", {}),
        CandidateSpec(
            "class-weighted BCE",
            "code",
            {"lr": 0.003},
            {"tasks/fed_heart_disease/client.py": edited},
            source_refs=["[src: Lin et al. 2017, focal loss]"],
        ),
        CandidateSpec("lr 0.0001", "scalar", {"lr": 0.0001}),
        CandidateSpec("fedadam crash", "scalar", {"aggregator": "fedadam", "server_lr": 0.5}),
        CandidateSpec("lr 0.01", "scalar", {"lr": 0.01}),
    ]
    campaign = Campaign(
        root,
        load_profile(root, "fed_heart_disease"),
        TAG,
        CampaignOptions(max_candidates=7, confirm=False),
        Specs(specs),
        run_fn=FakeRunner(crash_when={"server_lr": 0.5}),
    )
    campaign.dir.mkdir(parents=True)
    campaign.command(Command(CommandType.FORCE_LITERATURE))  # a literature row before the baseline
    campaign.start()
    monkeypatch.setattr(evidence, "RUNNER", SeededRunner())
    return root


def cli(root, *args):
    return main([*args, "--workspace", str(root)])


def numbers(text: str) -> list[float]:
    """Every score-like number: printed with four decimals (percentages and hours use fewer)."""
    return [float(n) for n in re.findall(r"[-+]?\d+\.\d{4}(?!\d)", text)]


def allowed_values(root) -> list[float]:
    """Every figure the report may print, recomputed here from results.tsv and evidence.tsv alone."""
    campaign = open_campaign(root, TAG)
    directory = campaign.directory
    rows = Ledger(directory).rows()
    scores = [r.score for r in rows if r.score is not None]
    baseline = next(r.score for r in rows if r.status == "keep")
    values = list(scores) + [s - baseline for s in scores]
    for record in Ledger(directory).latest_candidates().values():  # args quoted in descriptions and tables
        values += [float(v) for v in record["args"].values() if isinstance(v, (int, float))]
    best = baseline
    for s in scores:  # running-best gains
        if s > best:
            values.append(s - best)
            best = s
    evidence_rows = [line.split("\t") for line in (directory / "evidence.tsv").read_text().splitlines()[1:]]
    by_key: dict = {}
    for candidate, _role, subset, seed, status, score, *_ in evidence_rows:
        if status == "ok":
            by_key.setdefault((candidate, subset), {})[int(seed)] = float(score)
    for (candidate, subset), seeds in by_key.items():
        sample = np.array([seeds[s] for s in sorted(seeds)])
        values += describe(sample)
        base = by_key.get(("c001", subset))
        if candidate != "c001" and base:
            common = sorted(set(seeds) & set(base))
            values += describe(np.array([seeds[s] - base[s] for s in common]))
    return values


def describe(sample: np.ndarray) -> list[float]:
    values = [float(sample.mean())]
    if len(sample) > 1:
        sem = scipy_stats.sem(sample)
        low, high = scipy_stats.t.interval(0.95, len(sample) - 1, loc=sample.mean(), scale=sem)
        values += [
            float(sample.std(ddof=1)),
            float(sem),
            float(low),
            float(high),
            float(high - sample.mean()),
        ]
    return values


def test_report_end_to_end_numbers_match_the_ledgers(workspace, capsys):
    assert cli(workspace, "repeat", TAG, "--top", "2", "--seeds", "42,43,44,45,46") == 0
    assert cli(workspace, "heldout", TAG, "--seeds", "42,43") == 0
    assert cli(workspace, "report", TAG) == 0
    out = capsys.readouterr().out
    campaign = open_campaign(workspace, TAG)
    report = campaign.directory / "reports" / f"{TAG}-report.md"
    text = report.read_text()
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)  # every section, in order
    assert "![progress](progress.png)" in text
    assert (campaign.directory / "reports" / "progress.png").read_bytes()[:4] == b"\x89PNG"
    # every four-decimal number is a score, difference or statistic of results.tsv / evidence.tsv
    allowed = allowed_values(workspace)
    printed = numbers(text)
    assert len(printed) > 30
    for value in printed:
        assert min(abs(value - a) for a in allowed) < 6e-5, f"{value} is in no ledger"
    # and the headline figures are the right ones
    rows = Ledger(campaign.directory).rows()
    assert any(r.status == "literature" for r in rows)
    baseline = next(r.score for r in rows if r.status == "keep")
    best = max(r.score for r in rows if r.status in ("keep", "discard"))
    assert f"Baseline: {baseline:.4f}; best: {best:.4f}" in text
    assert f"lift {best - baseline:+.4f}" in text
    code = next(r for r in campaign.records.values() if r["description"] == "class-weighted BCE")
    assert f"| {code['id']} | {code['score']:.4f} | code change, literature-derived |" in text
    assert "Crashes: 1." in text and "RuntimeError: boom" in text
    assert "No LLM used" in text
    assert re.search(r"verified for every candidate: (\d+) of \1 candidates", text)
    assert "robust gain" in text and "survives" in text
    # committed to the campaign branch, the user's checkout untouched
    repo = git.Repo(workspace)
    tree = repo.commit(f"autoresearch/{TAG}").tree
    assert (tree / f"reports/{TAG}-report.md").data_stream.read().decode() == text
    assert (tree / "reports/progress.png").size > 1000
    assert (tree / f"reports/{TAG}-evidence.tsv").size > 0
    assert repo.head.ref.name == "main" and not repo.is_dirty()
    assert "committed to autoresearch/" in out


def test_report_before_any_evidence_says_what_to_run(workspace, capsys):
    assert cli(workspace, "report", "--no-commit") == 0
    text = (open_campaign(workspace, TAG).directory / "reports" / f"{TAG}-report.md").read_text()
    assert "Seed repeats: not run yet" in text and f"afr repeat {TAG}" in text
    assert "No same-budget control yet" in text


def test_integrity_catches_a_changed_protected_file(workspace):
    from engine.evidence.report import verify_integrity

    campaign = open_campaign(workspace, TAG)
    assert verify_integrity(campaign) == (7, [])
    repo = git.Repo(workspace)
    data = workspace / "tasks/fed_heart_disease/data.py"
    data.write_text(data.read_text() + "# tampered\n")
    repo.git.commit("-qam", "tamper")
    tampered = repo.head.commit.hexsha
    repo.git.reset("-q", "--hard", "HEAD~1")
    campaign.records["c003"] = {**campaign.records["c003"], "commit": tampered}
    assert verify_integrity(campaign) == (
        7,
        ["c003: tasks/fed_heart_disease/data.py differs from the campaign's start"],
    )
    campaign.records["c004"] = {**campaign.records["c004"], "protected_hashes": {"x": "y"}}
    assert "c004: its record holds different protected hashes" in verify_integrity(campaign)[1]


def test_report_errors_are_one_line(tmp_path, capsys):
    root, _ = init_workspace(tmp_path / "ws")
    assert cli(root, "report") == 2
    assert "no campaign" in capsys.readouterr().err


def test_status_plot_draws_the_running_best_in_plain_text(workspace, capsys):
    assert cli(workspace, "status", TAG, "--plot") == 0
    out = capsys.readouterr().out
    rows = Ledger(open_campaign(workspace, TAG).directory).rows()
    scores = [r.score for r in rows if r.status in ("keep", "discard")]
    assert f"baseline {scores[0]:.4f}, best {max(scores):.4f}" in out
    assert "candidate  (* kept" in out and "\x1b[" not in out.split("baseline", 1)[1]  # no colour codes in a pipe
    assert "*" in out and "•" in out


def test_report_lists_the_same_budget_control(workspace):
    control = Campaign(
        workspace,
        load_profile(workspace, "fed_heart_disease"),
        "control-20261122",
        CampaignOptions(max_candidates=3, match=TAG, confirm=False),
        ScriptedProposer(),
        run_fn=FakeRunner(),
    )
    control.start()
    assert cli(workspace, "report", TAG, "--no-commit") == 0
    text = (open_campaign(workspace, TAG).directory / "reports" / f"{TAG}-report.md").read_text()
    controls = text[text.index("## Controls") : text.index("## Runtime")]
    assert (
        f"| {TAG} | scripted |" in controls
        and f"| control-20261122 | scripted (control of {TAG}) |" in controls
    )
    assert "Run the same-budget control" not in text


def test_a_one_seed_heldout_check_claims_no_interval(workspace):
    assert cli(workspace, "heldout", TAG) == 0
    assert cli(workspace, "report", TAG, "--no-commit") == 0
    text = (open_campaign(workspace, TAG).directory / "reports" / f"{TAG}-report.md").read_text()
    assert "- Held-out check (1 seed): gain +" in text
    heldout = text[text.index("### Held-out subset") : text.index("## Controls")]
    assert "half-width" not in heldout and "too few seeds" in heldout
    assert "The held-out check used one seed" in text


def test_report_shows_where_the_time_went_as_afr_status_does(workspace):
    from engine.campaign.status import summary
    from engine.campaign.timing import PHASES, phase_rows

    assert cli(workspace, "report", TAG, "--no-commit") == 0
    text = (open_campaign(workspace, TAG).directory / "reports" / f"{TAG}-report.md").read_text()
    totals = summary(workspace, TAG)["time"]
    ran = [r for r in Ledger(open_campaign(workspace, TAG).directory).rows() if r.status != "literature"]
    assert totals["finished"] == len(ran) and totals["candidates_per_hour"] > 0
    assert f"- Throughput: {totals['candidates_per_hour']:.1f} candidates per hour ({len(ran)} run over" in text
    table = text[text.index("| phase | minutes | share |") :]
    rows = [line.strip() for line in table.splitlines()[2 : 2 + len(PHASES)]]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [label for _, label in PHASES]
    for (label, seconds), row in zip(phase_rows(totals), rows, strict=True):
        assert row.startswith(f"| {label} | {seconds / 60:.1f} |")
    # The proposer and the guard took time on every candidate, and afr status says the same totals.
    assert totals["phase_seconds"]["validation_seconds"] > 0 and totals["phase_seconds"]["rounds_seconds"] == 0
    # The real command in its own process (the in-process console may hold an earlier test's stdout).
    shown = subprocess.run(
        [sys.executable, "-m", "afr.cli", "status", TAG, "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{totals['candidates_per_hour']:.1f} candidates/hour" in shown.stdout
