"""Literature from real sources: the arxiv, pyalex and semanticscholar clients against a loopback
server that speaks each API, the cache that makes a worksheet reproducible, the triage, and the
worksheet of a forced review online and offline."""

from __future__ import annotations

import json

import pytest
from fakes import FakeRunner
from literature_server import LiteratureServer
from openai_server import ScriptedOpenAI

from engine.agent.literature_sources import SourceConfig, expressible_in, gather
from engine.agent.llm import LLMProposer
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.profile import load_profile
from engine.store.workspace import init_workspace

QUERIES = ["client drift heterogeneity", "loss nan exploding gradient", "different local steps inconsistency"]


@pytest.fixture
def workspace(tmp_path):
    return init_workspace(tmp_path / "ws")[0]


def online(monkeypatch, server: LiteratureServer) -> None:
    for client in ("arxiv", "pyalex", "semanticscholar"):  # the optional extra `literature`
        pytest.importorskip(client)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)


def test_three_clients_triage_and_a_cache_that_reproduces_the_result(workspace, tmp_path, monkeypatch):
    expressible = expressible_in(load_profile(workspace, "fed_heart_disease"))
    cache = tmp_path / "cache"
    with LiteratureServer() as server:
        online(monkeypatch, server)
        first = gather(QUERIES, cache, expressible)
        asked = list(server.requests)
    assert first.mode == "online" and first.notes == []
    assert {path.split("?")[0] for path in asked} == {"/api/query", "/works", "/graph/v1/paper/search"}
    assert len(list(cache.glob("*.json"))) == 9  # every answer of every source, one file each
    kept = [p for p in first.papers if p.verdict.startswith("kept")]
    assert 6 <= len(first.papers) <= 10 and 3 <= len(kept) <= 5
    assert {p.mechanism for p in kept} >= {"fedprox", "grad_clip", "fednova"}
    fedprox = next(p for p in first.papers if p.source == "arXiv:1812.06127")
    assert fedprox.found_by == "arxiv, openalex, semanticscholar" and "proximal term" in fedprox.abstract
    assert all("no mechanism" in p.verdict for p in first.papers if p.source.startswith("arXiv:240"))
    # The server is gone and the network is off: the cache gives back the same worksheet.
    monkeypatch.setenv("AFR_LITERATURE", "offline")
    again = gather(QUERIES, cache, expressible)
    assert [(p.source, p.found_by, p.verdict) for p in again.papers] == [
        (p.source, p.found_by, p.verdict) for p in first.papers
    ]
    assert again.hits == first.hits and again.mode == "online"


def test_a_failing_source_is_noted_and_the_others_still_answer(workspace, tmp_path, monkeypatch):
    expressible = expressible_in(load_profile(workspace, "fed_heart_disease"))
    with LiteratureServer(fail=("arxiv",)) as server:
        online(monkeypatch, server)
        result = gather(QUERIES, tmp_path / "cache", expressible, SourceConfig())
    assert result.mode == "online" and result.notes[0].startswith("arxiv unavailable: HTTPError")
    assert all("arxiv" not in p.found_by.split(", ") for p in result.papers) and result.papers
    assert sum("/api/query" in r for r in server.requests) == 1  # a dead source is not asked again


def test_nothing_answers_then_the_bundled_bibliography_is_used(workspace, tmp_path, monkeypatch):
    expressible = expressible_in(load_profile(workspace, "fed_heart_disease"))
    with LiteratureServer(fail=("arxiv", "openalex", "semanticscholar")) as server:
        online(monkeypatch, server)
        result = gather(QUERIES, tmp_path / "cache", expressible)
    assert result.mode == "offline" and result.notes[-1] == (
        "offline: the bundled bibliography was searched (no source answered)"
    )
    assert all(p.found_by == "bibliography" for p in result.papers)


def cards(proposals):
    challenges = [{"title": f"challenge {i}", "evidence": "e", "hypothesis": "h"} for i in range(3)]
    return json.dumps({"challenges": challenges, "proposals": proposals})


SCORES = {"expected_gain": 4, "contract_safety": 5, "simplicity": 4, "evidence": 4, "novelty": 3, "runtime_cost": 1}


def test_a_forced_review_online_lists_queries_papers_sources_and_selection(workspace, monkeypatch):
    steps = [
        {"text": json.dumps({"queries": QUERIES})},
        {
            "text": cards(
                [
                    {"mechanism": "FedProx", "sources": ["arXiv:1812.06127"], "args": {"fedprox_mu": 0.01}, "scores": SCORES},
                    {"mechanism": "SCAFFOLD", "sources": ["arXiv:1910.06378"], "args": {"aggregator": "scaffold"},
                     "scores": {**SCORES, "expected_gain": 3}},
                ]
            )
        },
    ]
    profile = load_profile(workspace, "fed_heart_disease")
    with LiteratureServer() as papers, ScriptedOpenAI(steps) as model:
        online(monkeypatch, papers)
        proposer = LLMProposer("openai/scripted-model", api_base=model.base_url, timeout=30, retries=1)
        options = CampaignOptions(proposer="llm", max_candidates=2)
        campaign = Campaign(workspace, profile, "lit-20261125", options, proposer, run_fn=FakeRunner())
        campaign.literature.requested = True
        campaign.start()
    rows = campaign.ledger.rows()
    assert [r.status for r in rows][:2] == ["keep", "literature"]
    sheet = (campaign.dir / rows[1].artifacts).read_text()
    for query in QUERIES:
        assert f"`{query}` →" in sheet
    assert "Searched: arXiv, OpenAlex and Semantic Scholar (answers cached in literature/cache/)" in sheet
    assert "| arXiv:1812.06127 | Federated Optimization in Heterogeneous Networks (2018) | arxiv, openalex, semanticscholar |" in sheet
    assert "kept (mechanism fednova)" in sheet and "dropped: no mechanism" in sheet
    assert "## Selected\n\n- literature: FedProx (fedprox_mu=0.01) [src: arXiv:1812.06127]" in sheet
    assert "bundled bibliography" not in sheet
    shown = model.requests[1]["messages"][-1]["content"]  # the model wrote its cards from the triaged papers
    assert "arXiv:2007.07481: Tackling the Objective Inconsistency" in shown and "mechanism: normalise updates" in shown
    assert len(list((campaign.dir / "literature" / "cache").glob("*.json"))) == 9
    assert rows[2].description == "literature: FedProx (fedprox_mu=0.01) [src: arXiv:1812.06127]"


def test_a_forced_review_offline_says_it_used_the_bundled_bibliography(workspace, monkeypatch):
    monkeypatch.setenv("AFR_LITERATURE", "offline")
    profile = load_profile(workspace, "fed_heart_disease")
    campaign = Campaign(
        workspace, profile, "off-20261125", CampaignOptions(max_candidates=2), ScriptedProposer(), FakeRunner()
    )
    campaign.literature.requested = True
    campaign.start()
    sheet = (campaign.dir / campaign.ledger.rows()[1].artifacts).read_text()
    assert "Searched: the bundled bibliography (offline)" in sheet
    assert "- offline: the bundled bibliography was searched (AFR_LITERATURE=offline)" in sheet
    assert "| bibliography |" in sheet and "## Selected\n\n- literature: " in sheet


def test_an_unreachable_source_fails_fast_at_the_probe(workspace, tmp_path):
    import socket
    import time

    with socket.socket() as free:  # a loopback port nobody listens on
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    config = SourceConfig(mode="auto", arxiv_url=f"{dead}/api/query", openalex_url=dead, semanticscholar_url=dead)
    started = time.monotonic()
    result = gather(QUERIES, tmp_path / "cache", lambda mechanism: True, config)
    assert time.monotonic() - started < 5 and result.mode == "offline"
    assert result.notes[0].startswith("arxiv unavailable: 127.0.0.1:") and "ConnectionRefusedError" in result.notes[0]
    assert len(result.notes) == 4 and not (tmp_path / "cache").exists()  # nothing cached from a dead source
