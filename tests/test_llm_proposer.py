"""The LLM agent against a real OpenAI-compatible HTTP server on 127.0.0.1, through LiteLLM."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fakes import FakeRunner
from openai_server import ScriptedOpenAI, tool_call

from engine.agent.llm import LLMProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.campaign.status import summary
from engine.control.events import Command, CommandType, EventType
from engine.profile import load_profile
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

TAG = "llm-20261122"
SENTINEL = "sk-SENTINEL-7f3a9c-never-write-me"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    root, _ = init_workspace(tmp_path / "ws")
    return root


def campaign_for(
    workspace, server, runner=None, model="openai/scripted-model", timeout=30.0, pauses=False, **options
):
    """A campaign of the LLM proposer on ``server``. Unless the test expects a pause, a pause stops
    the campaign and ``campaign.start()`` fails with its note (a paused campaign waits for ever)."""
    profile = load_profile(workspace, "fed_heart_disease")
    # The local server answers at once; a short timeout would fail honest calls on a loaded
    # machine, and three failures in a row pause the campaign.
    proposer = LLMProposer(
        model,
        api_base=server.base_url,
        timeout=timeout,
        retries=2,
        backoff=0.01,
        tool_calling=options.pop("tool_calling", True),
    )
    campaign = Campaign(
        workspace,
        profile,
        TAG,
        CampaignOptions(proposer="llm", **options),
        proposer,
        run_fn=runner or FakeRunner(),
    )
    events = []
    campaign.subscribe(events.append)
    if not pauses:
        start = campaign.start

        def stop_on_pause(event):
            if event.type is EventType.PAUSED:
                threading.Thread(target=campaign.command, args=(Command(CommandType.STOP),)).start()

        def start_and_check():
            start()
            notes = [e.data.get("note") for e in events if e.type is EventType.PAUSED]
            assert not notes, f"the campaign paused: {notes}"

        campaign.subscribe(stop_on_pause)
        campaign.start = start_and_check
    return campaign, events


def run_until_paused(campaign, events, timeout=60.0):
    """Run the campaign on a thread until it pauses, then stop it."""
    thread = threading.Thread(target=campaign.start, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while time.time() < deadline and not any(e.type is EventType.PAUSED for e in events):
        time.sleep(0.1)
    campaign.command(Command(CommandType.STOP))
    thread.join(timeout=30)


def submit(description="server momentum 0.8", args=None, target="scalar", refs=None):
    return tool_call(
        "submit_candidate",
        {
            "description": description,
            "target": target,
            "args": args if args is not None else {"aggregator": "fedavgm", "server_momentum": 0.8},
            "source_refs": refs or [],
        },
    )


def test_protected_edit_is_refused_to_the_model_and_the_loop_goes_on(workspace):
    steps = [
        {
            "tool_calls": [
                tool_call(
                    "edit_file",
                    {
                        "path": "tasks/fed_heart_disease/data.py",
                        "old": "SPLIT_SEED = 43",
                        "new": "SPLIT_SEED = 7",
                    },
                )
            ]
        },
        {"tool_calls": [tool_call("read_file", {"path": "../../etc/passwd"})]},
        {"tool_calls": [submit()]},
    ]
    with ScriptedOpenAI(steps) as server:
        campaign, _ = campaign_for(workspace, server, max_candidates=2)
        campaign.start()
    tool_messages = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_messages[-1]["content"] == "error: refused: tasks/fed_heart_disease/data.py is protected"
    assert (
        "escapes the workspace"
        in [m for m in server.requests[2]["messages"] if m["role"] == "tool"][-1]["content"]
    )
    system = server.requests[0]["messages"][0]["content"]
    assert "program.md: how an afr campaign is run" in system and "Working memory" in system
    records = Ledger(campaign.dir).latest_candidates()
    assert records["c002"]["status"] in ("keep", "discard") and records["c002"]["edited_files"] == []
    telemetry = records["c002"]["telemetry"]
    assert (
        telemetry["prompt_tokens"] == 360 and telemetry["completion_tokens"] == 90 and telemetry["steps"] == 3
    )
    assert [c["tool"] for c in telemetry["tool_calls"]] == ["edit_file", "read_file", "submit_candidate"]


def test_bad_model_output_and_provider_failures_never_crash(workspace):
    steps = [
        {"status": 500},  # retried
        {"tool_calls": [tool_call("edit_file", "{not json")]},
        {"tool_calls": [tool_call("rm_rf", {"path": "/"})]},
        {"text": "I think we should lower the learning rate."},  # no tool call at all
        {"sleep": 16},  # over the 8 s timeout: retried
        {"raw": "this is not json"},  # a broken body: retried
        {"tool_calls": [tool_call("submit_candidate", {"description": "", "target": "scalar", "args": {}})]},
        {"tool_calls": [submit("lr 0.003", {"lr": 0.003})]},
    ]
    with ScriptedOpenAI(steps) as server:
        campaign, events = campaign_for(workspace, server, max_candidates=2, timeout=8.0)
        campaign.start()
    results = [m["content"] for m in server.requests[-1]["messages"] if m["role"] in ("tool", "user")]
    assert any(r.startswith("error: arguments are not valid JSON") for r in results)
    assert any(r.startswith("error: unknown tool 'rm_rf'") for r in results)
    assert any("no tool call found" in r for r in results)
    assert any(r == "error: description must be a non-empty string" for r in results)
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["args"] == {"lr": 0.003} and record["status"] in ("keep", "discard")
    assert len(record["telemetry"]["errors"]) >= 3
    assert events[-1].type is EventType.FINISHED


def test_json_in_text_protocol_for_models_without_tools(workspace):
    reply = (
        '```json\n{"tool": "submit_candidate", "arguments": {"description": "FedAdam", "target": "scalar", '
        '"args": {"aggregator": "fedadam", "server_lr": 0.03}}}\n```'
    )
    with ScriptedOpenAI([{"text": reply}]) as server:
        campaign, _ = campaign_for(workspace, server, max_candidates=2, tool_calling=False)
        campaign.start()
    assert "tools" not in server.requests[0]
    assert Ledger(campaign.dir).latest_candidates()["c002"]["args"] == {
        "aggregator": "fedadam",
        "server_lr": 0.03,
    }


def test_a_dead_provider_rejects_proposals_then_pauses(workspace):
    with ScriptedOpenAI([{"status": 500}] * 30) as server:
        campaign, events = campaign_for(workspace, server, max_candidates=5, pauses=True)
        run_until_paused(campaign, events)
    rejected = [e for e in events if e.type is EventType.CANDIDATE_REJECTED]
    assert len(rejected) == 3 and all(
        r.data["reason"].startswith("proposer: the model did not answer") for r in rejected
    )
    paused = next(e for e in events if e.type is EventType.PAUSED)
    assert "the proposer failed 3 times" in paused.data["note"]


def test_cost_cap_pauses_the_campaign(workspace):
    big = {"prompt_tokens": 200_000, "completion_tokens": 50_000, "total_tokens": 250_000}
    with ScriptedOpenAI([{"tool_calls": [submit()], "usage": big}] * 3) as server:
        campaign, events = campaign_for(
            workspace, server, model="openai/gpt-4o-mini", max_candidates=5, max_cost=0.01, pauses=True
        )
        run_until_paused(campaign, events)
    paused = next(e for e in events if e.type is EventType.PAUSED)
    assert paused.data["note"].startswith("cost cap reached: $0.")
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["telemetry"]["cost_usd"] > 0.01


def test_the_api_key_never_reaches_a_file(workspace):
    with ScriptedOpenAI([{"tool_calls": [submit()]}]) as server:
        campaign, _ = campaign_for(workspace, server, max_candidates=2)
        campaign.start()
    assert any(SENTINEL in h.get("Authorization", h.get("authorization", "")) for h in server.headers)
    for path in workspace.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert SENTINEL.encode() not in path.read_bytes(), path


@pytest.mark.nvflare
def test_new_architecture_from_the_agent_validates_runs_on_nvflare_and_is_ledgered_with_its_diff(workspace):
    from engine.run.runner import run_job

    model_py = "tasks/fed_heart_disease/model.py"
    register = tool_call(
        "edit_file",
        {
            "path": model_py,
            "old": '    "mlp32": lambda: _mlp(32),\n',
            "new": '    "mlp32": lambda: _mlp(32),\n    "mlp8": lambda: _mlp(8),\n',
        },
    )
    steps = [
        {"tool_calls": [tool_call("list_surface", {}), tool_call("read_file", {"path": model_py})]},
        {"tool_calls": [register]},
        {"tool_calls": [tool_call("validate", {"args": {"model_arch": "mlp8"}}), tool_call("show_diff", {})]},
        {
            "tool_calls": [
                submit("register a small MLP (13-8-1) and use it", {"model_arch": "mlp8"}, "architecture")
            ]
        },
    ]
    with ScriptedOpenAI(steps) as server:
        campaign, _ = campaign_for(workspace, server, runner=run_job, max_candidates=2, smoke=True, confirm=False)
        campaign.start()
    shown = [m["content"] for m in server.requests[3]["messages"] if m["role"] == "tool"]
    assert "valid: every check passed" in shown and any('+    "mlp8": lambda: _mlp(8),' in s for s in shown)
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["status"] in ("keep", "discard"), record.get("error")
    assert record["edited_files"] == [model_py] and record["target"] == "architecture"
    assert 0 < record["score"] <= 1
    assert '"mlp8": lambda: _mlp(8)' in campaign.repo.diff(record["parent"], record["commit"])
    # job.py builds the model when it exports the job afr then launches (engine/run/launch.py).
    assert "model mlp8:" in (Path(record["log_path"]).parent / "export.log").read_text()


def cards_reply(proposals: list[dict]) -> str:
    challenges = [{"title": f"challenge {i}", "evidence": "e", "hypothesis": "h"} for i in range(3)]
    return "My cards:\n```json\n" + json.dumps({"challenges": challenges, "proposals": proposals}) + "\n```"


def scores(**changes) -> dict:
    base = {"expected_gain": 3, "contract_safety": 5, "simplicity": 4, "evidence": 4, "novelty": 3}
    return {**base, "runtime_cost": 1, **changes}


def test_an_llm_literature_cycle_ranks_its_cards_and_implements_the_winners(workspace):
    proposals = [
        {
            "mechanism": "FedProx",
            "sources": ["arXiv:1812.06127"],
            "args": {"fedprox_mu": 0.01},
            "scores": scores(),
        },
        {
            "mechanism": "FedProx (again)",
            "sources": ["arXiv:1812.06127"],
            "args": {"fedprox_mu": 0.01},
            "scores": scores(novelty=1),
        },
        {
            "mechanism": "train longer",
            "sources": ["arXiv:1602.05629"],
            "args": {"num_rounds": 40},
            "scores": scores(expected_gain=5),
        },
        {
            "mechanism": "score on the train split",
            "sources": ["none"],
            "scores": scores(expected_gain=5),
            "implementation_surface": "tasks/shared/evaluation.py",
            "change": "evaluate on train",
        },
        {
            "mechanism": "cosine local learning rate",
            "sources": ["arXiv:1608.03983"],
            "scores": scores(novelty=5),
            "implementation_surface": "tasks/fed_heart_disease/client.py",
            "change": "cosine-decay the local lr",
        },
    ]
    implement = [
        {"tool_calls": [tool_call("read_file", {"path": "tasks/fed_heart_disease/client.py"})]},
        {"tool_calls": [submit("cosine schedule, sketched as a lower lr", {"lr": 0.0005}, "code")]},
    ]
    steps = [
        {"text": '{"queries": ["client drift heterogeneity", "learning rate schedule", "proximal term"]}'},
        {"text": cards_reply(proposals)},
        *implement,
    ]
    with ScriptedOpenAI(steps) as server:
        campaign, events = campaign_for(workspace, server, max_candidates=3, parallel=2)
        campaign.literature.requested = True  # forced: waits for the baseline, then runs
        campaign.start()
    rows = campaign.ledger.rows()
    assert [r.status for r in rows][:2] == ["keep", "literature"]
    sheet = (campaign.dir / rows[1].artifacts).read_text()
    queries = [line for line in sheet.splitlines() if line.startswith(("1. `", "2. `", "3. `"))]
    assert len(queries) == 3 and "fedprox (arXiv:1812.06127)" in queries[0]
    assert (
        sheet.count("### C") == 3
        and "model openai/scripted-model, 240 prompt + 60 completion tokens" in sheet
    )
    assert "duplicate of FedProx" in sheet
    assert "contract: num_rounds: a fixed budget field cannot change" in sheet
    assert "contract: tasks/shared/evaluation.py is protected" in sheet
    # cosine (score 24) then FedProx (22) are selected; the code change went back to the agent
    assert "Implement this selected literature proposal: cosine local learning rate" in json.dumps(
        server.requests[2]["messages"]
    )
    cited = [r for r in rows[2:] if r.target == "literature"]
    assert {r.description for r in cited} == {
        "literature: FedProx (fedprox_mu=0.01) [src: arXiv:1812.06127]",
        "cosine schedule, sketched as a lower lr [src: arXiv:1608.03983]",
    }
    telemetry = next(
        e for e in events if e.type is EventType.TELEMETRY and e.data.get("phase") == "literature"
    )
    assert telemetry.data["prompt_tokens"] == 240 and telemetry.data["steps"] == 2
    totals = summary(workspace, TAG)["llm"]  # the literature cycle and the agent's two calls
    assert totals == {
        "models": ["openai/scripted-model"],
        "prompt_tokens": 480,
        "completion_tokens": 120,
        "cost_usd": 0.0,
        "model_calls": 4,
    }


def test_a_poor_model_in_the_literature_loop_falls_back_to_the_bibliography(workspace):
    steps = [{"text": "queries: drift"}, {"text": "still no json"}, {"status": 500}] + [{"status": 500}] * 8
    with ScriptedOpenAI(steps) as server:
        campaign, _ = campaign_for(workspace, server, max_candidates=2)
        campaign.literature.requested = True
        campaign.start()
    rows = campaign.ledger.rows()
    assert [r.status for r in rows][:2] == ["keep", "literature"]
    sheet = (campaign.dir / rows[1].artifacts).read_text()
    assert "the model's queries were unusable" in sheet and "the scripted queries were used" in sheet
    assert "the model's cards were unusable (the model did not answer" in sheet
    assert rows[2].target == "literature" and "[src: arXiv:" in rows[2].description


def test_the_humans_notes_reach_the_next_prompt(workspace):
    with ScriptedOpenAI([{"tool_calls": [submit()]}]) as server:
        campaign, events = campaign_for(workspace, server, max_candidates=2)

        # The next proposal is prepared while the baseline runs: a note given once the baseline
        # is proposed reaches it (a note reaches the next prompt, not one already asked).
        def note_during_baseline(event):
            if event.type is EventType.CANDIDATE_PROPOSED and event.data["id"] == "c001":
                campaign.command(Command(CommandType.NOTE, note="try server momentum, not lr"))

        campaign.subscribe(note_during_baseline)
        campaign.start()
    assert "notes from the human: try server momentum, not lr" in server.requests[0]["messages"][0]["content"]
