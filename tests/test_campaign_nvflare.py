"""Real campaigns through the ``afr`` command: NVFlare jobs, git worktrees, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import git
import psutil
import pytest
from afr_cli import afr

from engine.control.events import Event, EventType
from engine.run.runner import processes_of_run
from engine.store.ledger import Ledger

pytestmark = pytest.mark.nvflare
TAG = "heart-smoke-20261122"


def smoke_run(candidates: int) -> list[str]:
    """``afr run`` arguments for a headless smoke campaign of ``candidates`` on fed_heart_disease."""
    return [
        "run",
        "--profile",
        "fed_heart_disease",
        "--headless",
        "--max-candidates",
        str(candidates),
        "--smoke",
        "--no-confirm",  # confirmation runs are tests/test_confirm.py's subject, not these
        "--tag",
        TAG,
    ]


@pytest.fixture
def workspace(tmp_path):
    done = afr("init", str(tmp_path / "ws"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "ws"


def journal(workspace: Path) -> list[Event]:
    path = workspace / ".afr" / "campaigns" / TAG / "journal.jsonl"
    if not path.exists():
        return []
    return [Event.from_json(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def test_headless_campaign_keeps_history_and_shows_diffs(workspace):
    done = afr(*smoke_run(3), cwd=workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[c001] keep" in done.stdout
    rows = Ledger(workspace / ".afr/campaigns" / TAG).rows()
    assert [r.artifacts for r in rows] == ["runs/c001", "runs/c002", "runs/c003"]
    assert all(r.status in ("keep", "discard", "crash") for r in rows) and rows[0].status == "keep"
    assert all(0 < r.score <= 1 for r in rows if r.status != "crash")
    # Each record says where its job's time went, from NVFlare's own log lines.
    records = [json.loads(line) for line in (workspace / ".afr/campaigns" / TAG / "candidates.jsonl").open()]
    baseline = next(r for r in records if r["id"] == "c001" and r["status"] == "keep")
    timings = baseline["timings"]
    assert timings["nvflare_startup_seconds"] > 0 and timings["rounds_seconds"] > 0
    assert timings["final_eval_seconds"] > 0 and len(baseline["round_metrics"]) == 1
    log = git.Repo(workspace).git.log("--format=%s", f"autoresearch/{TAG}")
    assert "keep c001: baseline" in log and "results.tsv checkpoint: 3 rows" in log
    committed = git.Repo(workspace).git.show(f"autoresearch/{TAG}:results.tsv")
    assert committed == (workspace / ".afr/campaigns" / TAG / "results.tsv").read_text().rstrip("\n")
    diff = afr("diff", "c002", cwd=workspace)
    assert diff.returncode == 0 and "aggregator: sample_weighted -> fedavgm" in diff.stdout
    status = json.loads(afr("status", "--json", cwd=workspace).stdout)
    assert (
        status["state"] == "finished" and status["candidates"] == 3 and status["best"] >= status["baseline"]
    )
    assert not git.Repo(workspace).is_dirty(untracked_files=True)


def running_now(workspace) -> dict[str, str]:
    """Candidates whose job started and has not finished (the baseline left out): id -> run token."""
    running: dict[str, str] = {}
    for event in journal(workspace):
        if event.type is EventType.CANDIDATE_LOG and "token" in event.data and event.data["id"] != "c001":
            running[event.data["id"]] = event.data["token"]
        elif event.type is EventType.CANDIDATE_FINISHED:
            running.pop(event.data["id"], None)
    return running


def test_kill_9_during_two_slots_then_resume_records_both_and_finishes(workspace):
    engine = subprocess.Popen(
        [sys.executable, "-m", "afr.cli", *smoke_run(5), "--parallel", "2"],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    # Two candidates running at once, each with its NVFlare processes up (which two depends on
    # timing: candidates run alongside the baseline, so c002 may be done before c003 starts).
    tokens: dict[str, str] = {}
    deadline = time.time() + 400
    while time.time() < deadline:
        tokens = running_now(workspace)
        if len(tokens) == 2 and all(processes_of_run(t) for t in tokens.values()):
            break
        time.sleep(0.3)
    assert len(tokens) == 2, f"two slots never ran at once: {tokens}"
    os.kill(engine.pid, signal.SIGKILL)
    engine.wait(timeout=10)

    done = afr("resume", TAG, "--headless", cwd=workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert all(processes_of_run(t) == [] for t in tokens.values())
    ledger = Ledger(workspace / ".afr/campaigns" / TAG)
    rows = ledger.rows()
    assert len(rows) == 5 and rows[0].artifacts == "runs/c001"
    interrupted = {
        r.artifacts for r in rows if r.status == "crash" and r.description.endswith("(interrupted)")
    }
    assert interrupted == {f"runs/{cid}" for cid in tokens}
    records = ledger.latest_candidates()
    assert all(records[cid]["error"] == "interrupted" for cid in tokens)
    # The resumed engine ran what was left: the last row is a scored candidate it ran.
    assert records[rows[-1].artifacts.removeprefix("runs/")]["status"] in ("keep", "discard")
    # A candidate prepared ahead for a slot never ran: recorded as such, not as a crash, and not ledgered.
    held = [r for r in records.values() if r["status"] == "rejected"]
    assert all(r["error"].startswith("not run") for r in held)
    assert len(ledger.candidates()) == len(records)  # nothing duplicated
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(workspace) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
    assert not list((workspace / ".afr/campaigns" / TAG / "worktrees").glob("c*"))


def test_ctrl_c_stops_after_the_running_candidate(workspace):
    engine = subprocess.Popen(
        [sys.executable, "-m", "afr.cli", *smoke_run(5)],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # A shell that starts jobs in the background ignores SIGINT for them (CI may); a user's
        # terminal does not. Give the engine the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        process_group=0,  # its own foreground group, as in a terminal
        text=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        e.type is EventType.CANDIDATE_STARTED for e in journal(workspace)
    ):
        time.sleep(0.5)
    # Ctrl-C reaches the whole foreground process group: the engine and any child of its group.
    os.killpg(engine.pid, signal.SIGINT)
    output, _ = engine.communicate(timeout=300)
    assert engine.returncode == 0, output[-2000:]
    assert "stopping after the running candidate" in output
    rows = Ledger(workspace / ".afr/campaigns" / TAG).rows()
    finished = [e.data for e in journal(workspace) if e.type is EventType.CANDIDATE_FINISHED]
    assert [(r.artifacts, r.status) for r in rows] == [("runs/c001", "keep")], (finished, output[-2000:])
    assert json.loads(afr("status", "--json", cwd=workspace).stdout)["state"] == "stopped"
