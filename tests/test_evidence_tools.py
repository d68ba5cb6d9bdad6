"""The agent's evidence tools: bounded, redacted, and blind to held-out results and protected data."""

from __future__ import annotations

import json

import pytest
from fakes import FakeRunner

from engine.agent.redaction import redact
from engine.agent.scripted import ScriptedProposer
from engine.agent.tools import AgentWorkspace
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.evidence.runs import EvidenceLedger, EvidenceRow
from engine.profile import load_profile
from engine.store.workspace import init_workspace

TAG = "tools-20261125"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 4-candidate scripted campaign; c002 crashed with a long, secret-bearing log."""
    root, _ = init_workspace(tmp_path_factory.mktemp("tools") / "ws")
    long_log = "".join(f"site-1 round {i}: global_accuracy=0.{i:04d} loss=1.{i}\n" for i in range(300))
    labels = "labels: " + ", ".join(str(i % 2) for i in range(40)) + "\n"
    crash_log = (
        long_log + labels + "Authorization: Bearer abcdef0123456789xyz\nRuntimeError: shape mismatch\n"
    )
    runner = FakeRunner(crash_if=lambda args: args.get("aggregator") == "fedavgm", crash_log=crash_log)
    profile = load_profile(root, "fed_heart_disease")
    campaign = Campaign(
        root, profile, TAG, CampaignOptions(max_candidates=4, confirm=False), ScriptedProposer(), runner
    )
    campaign.start()
    ledger = EvidenceLedger(campaign.dir)
    ledger.append(EvidenceRow("c001", "baseline", "validation", 42, "ok", 0.61, 1.0, "abc", "evidence/x"))
    ledger.append(EvidenceRow("c001", "selected", "heldout", 42, "ok", 0.77, 1.0, "abc", "evidence/y"))
    return campaign


def tools(campaign) -> AgentWorkspace:
    return AgentWorkspace(campaign.context())


def test_a_crash_log_tail_is_bounded_redacted_and_elides_label_dumps(finished):
    agent = tools(finished)
    crashed = next(c for c in json.loads(agent.call("list_candidates", {})) if c["status"] == "crash")
    tail = agent.call("get_job_log", {"candidate": crashed["id"], "lines": 5000})
    assert len(tail.splitlines()) == 200 and tail.endswith("RuntimeError: shape mismatch")
    assert "abcdef0123456789xyz" not in tail and "[redacted]" in tail
    assert "[numeric array elided]" in tail and "0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1" not in tail
    curves = json.loads(agent.call("get_round_metrics", {"candidate": crashed["id"]}))
    assert len(curves["rounds"]["site-1"]) == 200 and curves["rounds"]["site-1"][-1]["loss"] == 1.299
    record = json.loads(agent.call("get_candidate", {"candidate": crashed["id"]}))
    assert record["status"] == "crash" and "protected_hashes" not in record


def test_diffs_evidence_and_refusals(finished):
    agent = tools(finished)
    assert agent.call("get_candidate_diff", {"candidate": "c001"}).startswith("c001 changed no file")
    evidence = json.loads(agent.call("get_evidence", {}))
    assert evidence["rows"] == [
        {"candidate": "c001", "role": "baseline", "seed": 42, "status": "ok", "score": 0.61}
    ]
    assert evidence["note"] == "1 repeat rows; 1 held-out rows withheld" and "0.77" not in json.dumps(
        evidence
    )
    assert agent.call("get_job_log", {"candidate": "../../etc"}).startswith(
        "error: '../../etc' is not a candidate id"
    )
    assert (
        agent.call("get_candidate", {"candidate": "c999"})
        == "error: no finished candidate c999 in this campaign"
    )
    refused = agent.call("read_file", {"path": "tasks/fed_heart_disease/uci_data/processed.cleveland.data"})
    assert refused.startswith("error: refused:") and "protected data" in refused
    assert not [p for p in json.loads(agent.call("list_surface", {}))["read_only"] if "uci_data" in p]
    assert "def " in agent.call(
        "read_file", {"path": "tasks/fed_heart_disease/data.py"}
    )  # protected code: readable


def test_redact_covers_keys_tokens_and_assignments(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890")
    text = redact(
        "key sk-proj-abcdefgh12345 ghp_abcdefghijklmnop AKIAABCDEFGHIJKLMNOP tok-1234567890 PASSWORD=hunter2hunter"
    )
    assert "abcdefgh12345" not in text and "ghp_" not in text and "AKIA" not in text
    assert "tok-1234567890" not in text and "hunter2hunter" not in text and text.count("[redacted]") == 5
