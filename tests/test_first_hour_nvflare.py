"""An abort (a second Ctrl-C) is its own outcome, through the real ``afr`` command and NVFlare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from afr_cli import afr

from engine.control.events import Event, EventType
from engine.store.ledger import Ledger

pytestmark = pytest.mark.nvflare
TAG = "heart-abort-20261123"


def events(directory) -> list[Event]:
    path = directory / "journal.jsonl"
    if not path.exists():
        return []
    return [Event.from_json(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def test_an_aborted_baseline_is_not_a_crash_and_runs_again_on_resume(tmp_path):
    assert afr("init", str(tmp_path / "ws"), cwd=tmp_path).returncode == 0
    workspace = tmp_path / "ws"
    directory = workspace / ".afr" / "campaigns" / TAG
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "afr.cli",
            "run",
            "--headless",
            "--smoke",
            "--no-confirm",
            "--max-candidates",
            "2",
            "--tag",
            TAG,
        ],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        process_group=0,  # its own foreground group, as in a terminal
        text=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        e.type is EventType.CANDIDATE_LOG and "token" in e.data for e in events(directory)
    ):
        time.sleep(0.3)
    time.sleep(2)
    os.killpg(engine.pid, signal.SIGINT)  # stop after the running candidate...
    time.sleep(1.5)
    os.killpg(engine.pid, signal.SIGINT)  # ...no: abort it
    output, _ = engine.communicate(timeout=300)
    assert engine.returncode == 130, output[-3000:]
    assert f"aborted; continue with `afr resume {TAG}`" in output
    assert "{'" not in output  # events print as words, never dict reprs

    ledger = Ledger(directory)
    [row] = ledger.rows()
    assert row.status == "discard" and row.score is None and row.artifacts == "runs/c001"
    assert row.description.endswith("[aborted by the human]")
    record = ledger.latest_candidates()["c001"]
    assert record["status"] == "aborted" and "aborted by the human" in record["error"]
    status = json.loads(afr("status", "--json", cwd=workspace).stdout)
    assert status["crashes"] == 0 and status["aborted"] == 1
    assert status["state"] == "stopped" and status["reason"] == "aborted by the human"

    done = afr("resume", TAG, "--headless", cwd=workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = ledger.latest_candidates()
    rows = ledger.rows()
    assert [(r.artifacts, r.status) for r in rows][0] == ("runs/c001", "discard")
    assert [r.status for r in rows] == ["discard", "keep"]
    rerun = records[rows[1].artifacts.removeprefix("runs/")]
    assert rerun["target"] == "baseline" and rerun["status"] == "keep"
    assert rows[1].score is not None and rows[1].score > 0
    # A candidate prepared while the aborted baseline ran never ran: recorded as not run, no row.
    assert all(r["error"].startswith("not run") for r in records.values() if r["status"] == "rejected")
    finished = json.loads(afr("status", "--json", cwd=workspace).stdout)
    assert finished["baseline"] == rows[1].score and finished["crashes"] == 0


def test_a_refusing_model_pauses_at_once_with_its_reason_and_the_proposer_named(tmp_path):
    from openai_server import ScriptedOpenAI

    assert afr("init", str(tmp_path / "ws"), cwd=tmp_path).returncode == 0
    workspace = tmp_path / "ws"
    directory = workspace / ".afr" / "campaigns" / TAG
    with ScriptedOpenAI([{"text": "OK"}] + [{"status": 401}] * 10) as server:
        engine = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "afr.cli",
                "run",
                "--headless",
                "--smoke",
                "--no-confirm",
                "--max-candidates",
                "3",
                "--tag",
                TAG,
                "--proposer",
                "llm",
                "--model",
                "openai/local",
                "--api-base",
                server.base_url,
            ],
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            process_group=0,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.time() + 300
        while time.time() < deadline and not any(
            e.type is EventType.STATE and e.data["state"] == "paused" for e in events(directory)
        ):
            time.sleep(0.3)
        status = afr("status", cwd=workspace)
        requests = len(server.requests)
        os.killpg(engine.pid, signal.SIGINT)
        output, _ = engine.communicate(timeout=120)
    assert "paused (the proposer failed 1 time: the model did not answer (auth error:" in status.stdout
    assert requests == 2  # the pre-flight, then one proposal call: an auth error is not retried
    rejected = [e for e in events(directory) if e.type is EventType.CANDIDATE_REJECTED]
    assert [e.data["by"] for e in rejected] == ["proposer"]
    assert "[c002] rejected by the proposer: proposer: the model did not answer (auth error" in output
    assert "paused: the proposer failed 1 time" in output
