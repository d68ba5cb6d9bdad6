"""The agent works like a researcher: it reads a crashed candidate's log, searches the
bibliography and cites what it found (a 6-candidate Heart campaign through a real
OpenAI-compatible HTTP server on 127.0.0.1, LiteLLM, and the fake runner)."""

from __future__ import annotations

import json

from fakes import FakeRunner
from openai_server import ScriptedOpenAI, tool_call

from engine.agent.llm import LLMProposer, parse_json_action
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.profile import load_profile
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

TAG = "research-20261125"
LEAKED = "sk-live-abcdef1234567890"
CRASH_LOG = (
    "site-1 round 0: global_accuracy=0.5400 local_loss=3.1\n"
    "Traceback (most recent call last):\n"
    '  File "client.py", line 88, in main\n'
    f"OPENAI_API_KEY={LEAKED} was in the environment\n"
    "ValueError: Input contains NaN (loss=nan at round 1)\n"
)
CLIP = {
    "path": "tasks/shared/training.py",
    "old": "        loss.backward()\n        optimizer.step()\n",
    "new": "        loss.backward()\n        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
    "        optimizer.step()\n",
}
CITED = "arXiv:1211.5063"  # gradient-norm clipping, found by the search below


def submit(description, args, target="scalar", refs=None):
    payload = {"description": description, "target": target, "args": args, "source_refs": refs or []}
    return {"tool_calls": [tool_call("submit_candidate", payload)]}


def test_the_agent_reads_a_crash_log_and_cites_what_it_searched(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    steps = [
        submit("aggressive local step lr=0.5", {"lr": 0.5}),  # c002: crashes
        submit("lr 0.003", {"lr": 0.003}),  # c003 (may be proposed while c002 still runs)
        {  # c004: investigate the crash
            "tool_calls": [
                tool_call("list_candidates", {}),
                tool_call("get_job_log", {"candidate": "c002", "lines": 20}),
            ]
        },
        {
            "tool_calls": [
                tool_call("search_literature", {"query": "loss nan exploding gradient"}),
                tool_call("get_round_metrics", {"candidate": "c001"}),
            ]
        },
        {"tool_calls": [tool_call("edit_file", CLIP)]},
        {"tool_calls": [tool_call("validate", {"args": {"lr": 0.2}})]},
        submit(
            f"clip the local gradient norm at 1.0 so lr=0.2 cannot blow up as c002 did [src: {CITED}]",
            {"lr": 0.2},
            "code",
            [CITED],
        ),
        submit("FedAvgM server momentum 0.9", {"aggregator": "fedavgm", "server_momentum": 0.9}),
        submit("FedProx mu=0.01", {"fedprox_mu": 0.01}),
    ]
    profile = load_profile(root, "fed_heart_disease")
    with ScriptedOpenAI(steps) as server:
        proposer = LLMProposer("openai/scripted-model", api_base=server.base_url, timeout=30, retries=1)
        runner = FakeRunner(crash_when={"lr": 0.5}, crash_log=CRASH_LOG)
        campaign = Campaign(
            root, profile, TAG, CampaignOptions(proposer="llm", max_candidates=6), proposer, run_fn=runner
        )
        campaign.start()

    records = Ledger(campaign.dir).latest_candidates()
    assert len(records) == 6 and records["c002"]["status"] == "crash"
    # What the model was shown: the crashed candidate's log tail, its secret redacted ...
    shown = {m.get("tool_call_id", ""): m["content"] for m in server.requests[4]["messages"] if m["role"] == "tool"}
    log_tail = next(c for c in shown.values() if "Traceback" in c)
    assert "ValueError: Input contains NaN" in log_tail and LEAKED not in log_tail and "[redacted]" in log_tail
    # ... and the bibliography entry it then cites, found through the search tool.
    search = json.loads(next(c for c in shown.values() if c.startswith("[{\"key\"")))
    assert CITED in [hit["source"] for hit in search]
    curves = json.loads(next(c for c in shown.values() if c.startswith('{"rounds"')))
    assert curves["rounds"]["site-1"][0]["round"] == 0
    cited = records["c004"]
    assert f"[src: {CITED}]" in cited["description"] and cited["source_refs"] == [CITED]
    assert cited["edited_files"] == ["tasks/shared/training.py"] and cited["status"] in ("keep", "discard")
    assert [c["tool"] for c in cited["telemetry"]["tool_calls"]] == [
        "list_candidates",
        "get_job_log",
        "search_literature",
        "get_round_metrics",
        "edit_file",
        "validate",
        "submit_candidate",
    ]
    # The transcript is kept with the candidate.
    transcript = (campaign.dir / cited["telemetry"]["transcript"]).read_text()
    assert '"get_job_log"' in transcript and "c002" in transcript and CITED in transcript
    assert LEAKED not in transcript


def test_json_in_text_takes_the_first_complete_object_despite_braces_in_prose():
    reply = (
        'I will submit. {"tool": "submit_candidate", "arguments": {"description": "lr", "target": "scalar", '
        '"args": {"lr": 0.003}}} Note: the set {a, b} and {"tool": "show_diff"} are for later.'
    )
    assert parse_json_action(reply) == (
        "submit_candidate",
        {"description": "lr", "target": "scalar", "args": {"lr": 0.003}},
    )
    assert parse_json_action("no braces at all") is None


def test_tool_calling_comes_from_litellms_model_map_unless_forced():
    from engine.agent.llm import detect_tool_calling

    assert detect_tool_calling("openai/gpt-4o-mini") is True
    assert detect_tool_calling("text-completion-openai/gpt-3.5-turbo-instruct") is False
    assert detect_tool_calling("hosted_vllm/some-local-model") is True  # unknown: tried with tools
    assert LLMProposer("text-completion-openai/gpt-3.5-turbo-instruct").tool_calling is False
    assert LLMProposer("text-completion-openai/gpt-3.5-turbo-instruct", tool_calling=True).tool_calling is True
    assert LLMProposer("openai/gpt-4o-mini", tool_calling=False).tool_calling is False
