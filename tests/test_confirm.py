"""Confirmation before keep, through the campaign loop with the fake runner (real git, real files).

The fake runner's score is a smooth function of lr; ``shift`` adds a seed-dependent effect, so
a "lucky" candidate beats the baseline on the campaign seed only.
"""

from __future__ import annotations

import pytest
from fakes import FakeRunner
from test_campaign import ListProposer, make, workspace  # noqa: F401 (fixture)

from engine.agent.base import CandidateSpec
from engine.control.events import Command, CommandType, EventType
from engine.evidence.runs import EvidenceLedger

BASELINE = CandidateSpec("baseline", "baseline", {})
BETTER = CandidateSpec("lr 0.01", "scalar", {"lr": 0.01})  # 0.700 vs the baseline's 0.6368 on every seed
LUCKY = CandidateSpec("lr 0.0005", "scalar", {"lr": 0.0005})  # 0.618, plus 0.03 on seed 42 only


def lucky_on_42(args: dict, seed: int) -> float:
    return 0.03 if args.get("lr") == 0.0005 and seed == 42 else 0.0


def confirm_calls(runner: FakeRunner) -> list[tuple[float, int]]:
    return [(c["args"].get("lr", 0.001), c["seed"]) for c in runner.calls if c.get("seed") is not None]


def test_a_real_gain_is_confirmed_and_kept(workspace):  # noqa: F811
    runner = FakeRunner()
    campaign, events = make(
        workspace, runner, ListProposer([BASELINE, BETTER]), max_candidates=2, confirm=True
    )
    campaign.start()
    records = campaign.final_records()
    assert records["c002"]["status"] == "keep"
    verdict = records["c002"]["confirmation"]
    assert verdict["confirmed"] and verdict["incumbent"] == "c001" and verdict["seeds"] == [42, 43, 44]
    assert verdict["gain"] == pytest.approx(0.7 - 0.636788, abs=1e-4)
    # Two extra seeds for the candidate and for the incumbent, through the campaign's runner.
    assert sorted(confirm_calls(runner)) == [(0.001, 43), (0.001, 44), (0.01, 43), (0.01, 44)]
    progress = [e.data for e in events if e.type is EventType.CANDIDATE_CONFIRMING]
    assert [(p["phase"], p["done"], p["total"]) for p in progress][0] == ("started", 0, 2)
    assert progress[-1]["phase"] == "done" and progress[-1]["done"] == 2 and progress[-1]["confirmed"]
    # results.tsv keeps the reference schema: the campaign-seed score, status keep.
    row = campaign.ledger.rows()[-1]
    assert row.status == "keep" and row.score == pytest.approx(0.7)
    evidence = EvidenceLedger(campaign.dir).latest()
    assert {(c, s) for c, _, s in evidence} == {(c, s) for c in ("c001", "c002") for s in (42, 43, 44)}
    assert all(r.role == ("baseline" if r.candidate == "c001" else "confirm") for r in evidence.values())
    assert all(r.subset == "validation" for r in evidence.values())


def test_a_lucky_seed_is_not_kept_and_its_runs_are_reused(workspace):  # noqa: F811
    runner = FakeRunner(shift=lucky_on_42)
    specs = [BASELINE, LUCKY, BETTER]
    campaign, events = make(workspace, runner, ListProposer(specs), max_candidates=3, confirm=True)
    campaign.start()
    records = campaign.final_records()
    lucky = records["c002"]
    assert lucky["status"] == "discard"
    assert lucky["score"] == pytest.approx(0.618 + 0.03, abs=1e-3)  # it did beat the baseline on seed 42
    note = lucky["confirmation"]["note"]
    assert note.startswith("not confirmed") and "seed 43: 0.61" in note and "vs 0.6368" in note
    assert lucky["confirmation"]["gain"] < 0
    assert [records[c]["status"] for c in ("c001", "c002", "c003")] == ["keep", "discard", "keep"]
    # c003 is confirmed against c001 too; c001's extra seeds ran once, for c002, and were reused.
    assert records["c003"]["confirmation"]["confirmed"]
    assert sorted(confirm_calls(runner)).count((0.001, 43)) == 1
    assert len(confirm_calls(runner)) == 6
    # The lucky candidate's runtime includes its confirmation runs (it counts in the campaign's).
    assert lucky["runtime_seconds"] == lucky["confirmation"]["runtime_seconds"] + runner.delay


def test_the_confirmation_reference_is_the_best_kept_candidate(workspace):  # noqa: F811
    """A lucky discard's high seed-42 score does not become the bar later candidates must beat."""

    def very_lucky(args, seed):
        return (0.2 if seed == 42 else -0.3) if args.get("lr") == 0.0005 else 0.0

    campaign, _ = make(
        workspace,
        FakeRunner(shift=very_lucky),
        ListProposer([BASELINE, LUCKY, BETTER]),
        max_candidates=3,
        confirm=True,
    )
    campaign.start()
    records = campaign.final_records()
    assert records["c002"]["score"] > records["c003"]["score"] > records["c001"]["score"]
    assert [records[c]["status"] for c in ("c001", "c002", "c003")] == ["keep", "discard", "keep"]
    assert records["c003"]["confirmation"]["incumbent"] == "c001"


def test_no_confirm_keeps_on_the_campaign_seed(workspace):  # noqa: F811
    runner = FakeRunner(shift=lucky_on_42)
    campaign, _ = make(workspace, runner, ListProposer([BASELINE, LUCKY]), max_candidates=2, confirm=False)
    campaign.start()
    assert [r.status for r in campaign.ledger.rows()] == ["keep", "keep"]
    assert confirm_calls(runner) == []


def test_resume_in_the_middle_of_a_confirmation(workspace):  # noqa: F811
    runner = FakeRunner(delay=0.2)
    campaign, events = make(
        workspace, runner, ListProposer([BASELINE, BETTER]), max_candidates=2, confirm=True
    )

    def stop_after_first_confirmation_run(event):
        if event.type is EventType.CANDIDATE_CONFIRMING and event.data["phase"] == "progress":
            campaign.command(Command(CommandType.STOP, note="engine going down"))

    campaign.subscribe(stop_after_first_confirmation_run)
    campaign.start()
    assert "c002" not in campaign.final_records()  # unreviewed: neither kept nor crashed
    before = {(r.candidate, r.seed) for r in EvidenceLedger(campaign.dir).rows() if r.seed != 42}
    assert 1 <= len(before) < 4

    runner2 = FakeRunner()
    resumed, events2 = make(workspace, runner2, ListProposer([]), max_candidates=2, confirm=True)
    resumed.resume()
    record = resumed.final_records()["c002"]
    assert record["status"] == "keep" and record["confirmation"]["confirmed"]
    ids = {0.001: "c001", 0.01: "c002"}
    rerun = {(ids[lr], seed) for lr, seed in confirm_calls(runner2)}
    assert rerun == {(c, s) for c in ("c001", "c002") for s in (43, 44)} - before
    assert len(runner2.calls) == len(rerun)  # the campaign-seed run of c002 was not repeated
    rows = resumed.ledger.rows()
    assert [r.status for r in rows] == ["keep", "keep"]
    assert "interrupted" not in rows[-1].description
    assert any(e.type is EventType.CANDIDATE_CONFIRMING for e in events2)


def test_the_cockpit_shows_confirming_progress_on_the_candidate(workspace):  # noqa: F811
    from afr_tui.model import CockpitModel
    from afr_tui.widgets.table import CandidateTable

    campaign, events = make(
        workspace, FakeRunner(), ListProposer([BASELINE, BETTER]), max_candidates=2, confirm=True
    )
    campaign.start()
    progress = next(
        i for i, e in enumerate(events) if e.type is EventType.CANDIDATE_CONFIRMING and e.data["done"] == 1
    )
    model = CockpitModel()
    model.apply_all(events[: progress + 1])
    candidate = model.candidates["c002"]
    cells = CandidateTable().cells(candidate, model)
    assert (str(cells[1]), cells[2]) == ("confirming", "1/2")
    model.apply_all(events[progress + 1 :])
    assert model.candidates["c002"].status == "keep"


def test_the_report_has_a_confirmation_section(workspace):  # noqa: F811
    from engine.evidence.report import render
    from engine.evidence.runs import open_campaign

    runner = FakeRunner(shift=lucky_on_42)
    campaign, _ = make(
        workspace, runner, ListProposer([BASELINE, LUCKY, BETTER]), max_candidates=3, confirm=True
    )
    campaign.start()
    text = render(open_campaign(workspace, campaign.tag))
    section = text.split("## Confirmation before keep")[1].split("\n## ")[0]
    records = campaign.final_records()
    assert "2 went to confirmation: 1 confirmed, 1 not confirmed" in section
    lucky = records["c002"]["confirmation"]
    assert f"| c002 | c001 | 42: {lucky['candidate_scores']['42']:.4f} vs" in section
    assert f"{lucky['gain']:+.4f} | not confirmed, discarded |" in section
    assert "| c003 | c001 |" in section and "confirmed, kept" in section


@pytest.mark.parametrize("rule, kept", [("mean", True), ("every_seed", False)])
def test_every_seed_rule_refuses_a_large_seed_42_win_that_carries_the_mean(workspace, rule, kept):  # noqa: F811
    path = workspace / "profiles" / "fed_heart_disease.toml"
    path.write_text(
        path.read_text().replace("confirm_seeds = [43, 44]", f'confirm_seeds = [43, 44]\nrule = "{rule}"')
    )

    def big_win_on_42(args, seed):  # +0.18 on seed 42, -0.03 on 43 and 44: mean +0.04
        return (0.2 if seed == 42 else -0.01) if args.get("lr") == 0.0005 else 0.0

    campaign, _ = make(
        workspace,
        FakeRunner(shift=big_win_on_42),
        ListProposer([BASELINE, LUCKY]),
        max_candidates=2,
        confirm=True,
    )
    campaign.start()
    record = campaign.final_records()["c002"]
    assert record["confirmation"]["gain"] > 0.03
    assert record["status"] == ("keep" if kept else "discard")
    if not kept:
        assert "no gain on seed(s) 43, 44" in record["confirmation"]["note"]
