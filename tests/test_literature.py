"""The literature loop's cards, ranking and triggers (scripted proposer, fake runner)."""

from __future__ import annotations

import pytest
from fakes import FakeRunner

from engine.agent.base import ProposalContext
from engine.agent.literature import crash_signature, shared_crash_cause
from engine.agent.literature_cards import (
    CardError,
    Draft,
    ProposalCard,
    conclude,
    parse_cards,
    parse_proposal,
)
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import EventType
from engine.profile import load_profile
from engine.store.workspace import init_workspace

TAG = "lit-20261122"
SCORES = {
    "expected_gain": 4,
    "contract_safety": 5,
    "simplicity": 3,
    "evidence": 2,
    "novelty": 5,
    "runtime_cost": 2,
}


@pytest.fixture
def workspace(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    return root


def card(mechanism: str, args: dict | None = None, surface: str = "args", **scores) -> ProposalCard:
    return ProposalCard(mechanism, ["arXiv:0000.00001"], "change", {**SCORES, **scores}, args or {}, surface)


def test_the_card_score_is_the_documented_formula():
    assert card("x").score == 2 * 4 + 2 * 5 + 3 + 2 + 5 - 2
    assert card("x", expected_gain=1, contract_safety=3, runtime_cost=5).score == 2 + 6 + 3 + 2 + 5 - 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a card", "must be an object"),
        ({"sources": ["a"]}, "without a mechanism"),
        ({"mechanism": "m", "sources": [3], "scores": SCORES}, "sources must be a list of strings"),
        ({"mechanism": "m", "sources": ["a"]}, "scores must be an object"),
        ({"mechanism": "m", "sources": ["a"], "scores": {**SCORES, "novelty": 9}}, "novelty must be"),
        ({"mechanism": "m", "sources": ["a"], "scores": {**SCORES, "evidence": "high"}}, "evidence must be"),
        ({"mechanism": "m", "sources": ["a"], "scores": SCORES, "args": [1]}, "args must be an object"),
    ],
)
def test_bad_proposal_cards_are_refused_with_the_field(raw, message):
    with pytest.raises(CardError, match=message):
        parse_proposal(raw)


def test_cards_are_found_inside_prose_and_bad_ones_are_skipped():
    text = (
        "Here you go:\n```json\n"
        '{"challenges": [{"title": "drift"}, 7], "proposals": ['
        '{"mechanism": "FedProx", "sources": "arXiv:1812.06127", "args": {"fedprox_mu": 0.01}, '
        '"scores": {"expected_gain": 3, "contract_safety": 5, "simplicity": 5, "evidence": 4, '
        '"novelty": 3, "runtime_cost": 1}}, {"mechanism": "broken"}]}\n```'
    )
    challenges, proposals, notes = parse_cards(text)
    assert [c.title for c in challenges] == ["drift"] and proposals[0].sources == ["arXiv:1812.06127"]
    assert len(notes) == 2 and "broken: scores must be an object" in notes[1]
    with pytest.raises(CardError, match="no usable proposal card"):
        parse_cards('{"proposals": [{"mechanism": "x"}]}')
    with pytest.raises(CardError, match="no JSON object"):
        parse_cards("I would try FedProx.")


def context_for(workspace, records=None, best_args=None) -> ProposalContext:
    profile = load_profile(workspace, "fed_heart_disease")
    return ProposalContext(profile, [], records or [], best_args or {}, 1, 42, root=workspace)


def test_ranking_drops_duplicates_known_ideas_and_contract_breakers(workspace):
    tried = {"id": "c004", "status": "discard", "score": 0.6, "args": {"aggregator": "median"}}
    draft = Draft(
        "test",
        ["q"],
        {"q": []},
        [],
        [
            card("FedProx", {"fedprox_mu": 0.01}, novelty=2),
            card("FedProx again", {"fedprox_mu": 0.01}, novelty=1),
            card("more rounds", {"num_rounds": 50}),
            card("risky", {"lr": 0.01}, contract_safety=2),
            card("median", {"aggregator": "median"}),
            card("new loss", surface="tasks/shared/scoring.py"),
            card("wider MLP", surface="tasks/fed_heart_disease/model.py"),
            card("SCAFFOLD", {"aggregator": "scaffold"}, expected_gain=1),
        ],
    )
    result = conclude(draft, context_for(workspace, [tried]), 2, ["plateau"])
    sheet = result.worksheet
    assert "duplicate of FedProx" in sheet
    assert "contract: num_rounds: a fixed budget field cannot change" in sheet
    assert "contract risk: its own contract_safety score is 2" in sheet
    assert "known: tried as c004 (discard, score 0.6)" in sheet
    assert "tasks/shared/scoring.py is protected" in sheet
    assert "ranked below the 2 selected" in sheet  # SCAFFOLD: valid but scored lowest
    # wider MLP (score 26) and FedProx (score 23) win; the code change goes back to the agent
    assert [s.description.split(" [")[0] for s in result.proposals] == [
        "literature: wider MLP",
        "literature: FedProx (fedprox_mu=0.01)",
    ]
    assert result.proposals[0].directive.startswith("Implement this selected literature proposal: wider MLP")
    assert all("[src: arXiv:0000.00001]" in s.description for s in result.proposals)
    assert result.summary.startswith("literature review: wider MLP arXiv:0000.00001; FedProx")


def test_scripted_worksheet_has_queries_cards_scores_and_drops_the_duplicate(workspace):
    result = ScriptedProposer().literature(context_for(workspace), 3)
    sheet = result.worksheet
    for heading in (
        "## Symptoms",
        "## Search queries",
        "## Challenge cards",
        "## Proposal cards",
        "## Selected",
    ):
        assert heading in sheet
    hits = next(line for line in sheet.splitlines() if "`server momentum adaptive optimizer` →" in line)
    assert sheet.count("### C") == 3
    assert "fedadam (arXiv:2003.00295)" in hits and "fedavgm (arXiv:1909.06335)" in hits
    assert "duplicate of coordinate-wise median" in sheet  # trimmed mean expresses as the same args here
    assert len(result.proposals) == 3 and all(s.source_refs for s in result.proposals)


def test_crash_signature_ignores_run_specific_parts():
    a = crash_signature("Traceback...\nRuntimeError: shape [4, 13] at /tmp/a/b.py line 12")
    b = crash_signature("RuntimeError: shape [8, 13] at /work/x/y.py line 90")
    assert a == b
    assert shared_crash_cause(["x", "interrupted", "interrupted", "interrupted"]) == ""
    assert shared_crash_cause(["OOM 1", "OOM 2", "other", "OOM 3"]) == "OOM <n>"


def test_repeated_crashes_with_one_cause_start_a_literature_cycle(workspace):
    profile = load_profile(workspace, "fed_heart_disease")
    runner = FakeRunner(crash_if=lambda args: "aggregator" in args)  # the calibration sweep crashes
    campaign = Campaign(
        workspace, profile, TAG, CampaignOptions(max_candidates=6), ScriptedProposer(), runner
    )
    events = []
    campaign.subscribe(events.append)
    campaign.start()
    statuses = [r.status for r in campaign.ledger.rows()]
    assert statuses[:5] == ["keep", "crash", "crash", "crash", "literature"]
    started = next(e for e in events if e.type is EventType.LITERATURE_STARTED)
    assert started.data["reason"] == "3 or more crashes share a cause: RuntimeError: boom"
    sheet = (campaign.dir / "literature" / "001.md").read_text()
    assert (
        "trigger: 3 or more crashes share a cause" in sheet
        and "crash cause (3x): RuntimeError: boom" in sheet
    )
    assert sum(s == "literature" for s in statuses) == 1  # the same crashes do not trigger it again


def test_placeholder_queries_find_nothing_and_are_refused():
    from engine.agent.literature import search
    from engine.agent.llm import parse_queries

    assert search("...") == [] and [m.key for m in search("server momentum")][0] == "fedavgm"
    with pytest.raises(CardError, match="placeholders"):
        parse_queries('{"queries": ["...", "...", "..."]}')
    assert parse_queries('ok: {"queries": ["client drift", "server momentum"]}') == [
        "client drift",
        "server momentum",
    ]


def test_a_resume_right_after_a_review_implements_its_selection(workspace):
    from engine.control.events import Command, CommandType

    profile = load_profile(workspace, "fed_heart_disease")
    options = CampaignOptions(max_candidates=4, parallel=2)
    campaign = Campaign(workspace, profile, TAG, options, ScriptedProposer(), FakeRunner())
    campaign.literature.requested = True

    def stop_after_the_review(event):
        if event.type is EventType.LITERATURE_FINISHED:
            campaign.command(Command(CommandType.STOP))

    campaign.subscribe(stop_after_the_review)
    campaign.start()
    assert [r.status for r in campaign.ledger.rows()] == ["keep", "literature"]
    again = Campaign(workspace, profile, TAG, options, ScriptedProposer(), FakeRunner())
    again.resume()
    rows = again.ledger.rows()
    assert [r.target for r in rows[2:4]] == ["literature", "literature"]
    assert all("[src: arXiv:" in r.description for r in rows[2:4])
