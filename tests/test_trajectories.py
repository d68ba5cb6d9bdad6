"""``afr trajectories`` and the mechanism table of ``afr compare`` (fake runner; real git, ledgers, CLI)."""

from __future__ import annotations

import json

import pytest
from evidence_helpers import SeededRunner

from afr.cli import main
from engine.evidence import runs as evidence
from engine.evidence.trajectories import SEED_STRIDE, mechanisms_of
from engine.store.workspace import init_workspace

BASE = "traj-20261125"
TAGS = [f"{BASE}-t{i}" for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    root, _ = init_workspace(tmp_path_factory.mktemp("traj") / "ws")
    patch = pytest.MonkeyPatch()
    patch.setattr(evidence, "RUNNER", SeededRunner())
    argv = ["trajectories", "--k", "3", "--max-candidates", "5", "--tag", BASE, "--workspace", str(root)]
    code = main(argv)
    yield root, code, argv
    patch.undo()


def kept_mechanisms(root, tag):
    campaign = evidence.open_campaign(root, tag)
    baseline = campaign.baseline()["id"]
    found = set()
    for record in campaign.records.values():
        if record["status"] == "keep" and record["id"] != baseline:
            found |= set(mechanisms_of(record, campaign.profile))
    return found


def test_trajectories_run_k_independent_campaigns(trajectories, capsys):
    root, code, argv = trajectories
    assert code == 0
    seeds = []
    for tag in TAGS:
        campaign = evidence.open_campaign(root, tag)
        assert len([r for r in campaign.rows if r.status != "literature"]) == 5
        assert campaign.options["proposer"] == "tpe" and campaign.options["confirm"] is True
        seeds.append(campaign.options["seed"])
    assert seeds == [42, 42 + SEED_STRIDE, 42 + 2 * SEED_STRIDE]
    # Different seeds, different searches: the trajectories did not propose the same candidates.
    proposals = [
        [r["description"] for r in evidence.open_campaign(root, t).records.values()][1:] for t in TAGS
    ]
    assert proposals[0] != proposals[1] != proposals[2]
    # Running the command again continues: every trajectory is finished, so each is skipped.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evidence, "RUNNER", SeededRunner())
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert all(f"{tag}: finished already; skipped" in out for tag in TAGS)
    assert "mechanism" in out and "trajectories" in out


def test_compare_counts_each_mechanism_across_trajectories_with_repeat_verdicts(trajectories, capsys):
    root, _, _ = trajectories
    kept = {tag: kept_mechanisms(root, tag) for tag in TAGS}
    assert any(kept.values()), "no trajectory kept anything besides its baseline"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evidence, "RUNNER", SeededRunner())
        repeated = next(tag for tag in TAGS if kept[tag])
        assert main(["repeat", repeated, "--top", "1", "--seeds", "42,43,44", "--workspace", str(root)]) == 0
    capsys.readouterr()
    assert main(["compare", *TAGS, "--workspace", str(root)]) == 0
    table = capsys.readouterr().out
    for mechanism in set().union(*kept.values()):
        count = sum(mechanism in kept[tag] for tag in TAGS)
        line = next(line for line in table.splitlines() if line.startswith(mechanism + " "))
        assert f" {count}/3 " in line
    assert main(["compare", *TAGS, "--json", "--workspace", str(root)]) == 0
    facts = {f["tag"]: f for f in json.loads(capsys.readouterr().out)}
    assert set(facts[repeated]["mechanisms"]) == kept[repeated]
    top = evidence.open_campaign(root, repeated).top(1)[0]
    verdicts = {
        facts[repeated]["mechanisms"][m]
        for m in mechanisms_of(top, evidence.open_campaign(root, repeated).profile)
    }
    assert verdicts and verdicts <= {"robust gain", "seed-sensitive", "no gain"}


def test_trajectories_refuse_bad_input_in_one_line(tmp_path, capsys):
    root, _ = init_workspace(tmp_path / "ws")
    assert main(["trajectories", "--tag", "no-date", "--k", "2", "--workspace", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "YYYYMMDD" in err
    with pytest.raises(SystemExit):
        main(["trajectories", "--k", "0", "--workspace", str(root)])
