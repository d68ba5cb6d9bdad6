"""Bring your own coding agent: scripted stand-in commands in the candidate's worktree (real git,
real subprocesses, ``afr tool`` through the real CLI; the fake runner scores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from fakes import FakeRunner

from afr.agent_options import resolve_proposer
from afr.cli import build_parser
from engine.agent.command import CommandProposer, agent_environment
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import EventType
from engine.profile import load_profile
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

TAG = "agent-20261125"
CITED = "arXiv:1211.5063"
CRASH_LOG = "Traceback (most recent call last):\nValueError: Input contains NaN (loss=nan at round 1)\n"

STAND_IN = textwrap.dedent(
    """
    import json, os, pathlib, subprocess, sys, time

    cid = os.environ["AFR_CANDIDATE"]
    role = json.loads(pathlib.Path(sys.argv[1]).read_text()).get(cid, "default")
    brief = sys.stdin.read()
    print(f"{cid}: brief of {len(brief)} characters; role {role}")

    def tool(name, args="{}"):
        out = subprocess.run(os.environ["AFR_TOOL"] + f" {name} '{args}'", shell=True, capture_output=True, text=True)
        print(f"$ afr tool {name} {args}\\n{out.stdout}{out.stderr}")
        return out.stdout

    def answer(**payload):
        pathlib.Path(os.environ["AFR_ARGS_FILE"]).write_text(json.dumps(payload))

    if role == "crash":
        answer(description="aggressive local step lr=0.5", target="scalar", args={"lr": 0.5})
    elif role == "research":
        crashed = [c["id"] for c in json.loads(tool("list_candidates")) if c["status"] == "crash"]
        reason = "no crash to learn from yet"
        if crashed:
            log = tool("get_job_log", json.dumps({"candidate": crashed[-1], "lines": 20}))
            reason = f"{crashed[-1]} crashed: " + [l for l in log.splitlines() if "Error" in l][-1]
        hits = json.loads(tool("search_literature", '{"query": "loss nan exploding gradient"}'))
        source = next(h["source"] for h in hits if h["key"] == "grad_clip")
        path = pathlib.Path("tasks/shared/training.py")
        text = path.read_text()
        path.write_text(text.replace(
            "        loss.backward()\\n        optimizer.step()\\n",
            "        loss.backward()\\n        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\\n"
            "        optimizer.step()\\n",
        ))
        answer(description=f"clip the gradient norm at 1.0 ({reason}) [src: {source}]",
               target="code", args={"lr": 0.2}, source_refs=[source])
    elif role == "protected":
        pathlib.Path("tasks/fed_heart_disease/data.py").write_text("# tampered\\n")
        answer(description="edit the data bridge", target="code", args={})
    elif role == "escape":
        root = pathlib.Path(os.environ["AFR_WORKSPACE"])
        (root / "escaped.txt").write_text("written outside the worktree\\n")
        ledger = root / ".afr" / "campaigns" / os.environ["AFR_CAMPAIGN"] / "results.tsv"
        ledger.write_text(ledger.read_text() + "tampered\\n")
        answer(description="harmless-looking args", target="scalar", args={"lr": 0.002})
    elif role == "hang":
        pathlib.Path(sys.argv[2]).write_text(str(os.getpid()))
        time.sleep(120)
    elif role == "noisy":
        sys.stdout.write("x" * 50_000)
        answer(description="lr 0.004", target="scalar", args={"lr": 0.004})
    else:
        print("provider key visible:", "OPENAI_API_KEY" in os.environ)
        answer(description="FedAvgM server momentum", target="scalar",
               args={"aggregator": "fedavgm", "server_momentum": float(cid[1:]) / 10})
    """
)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SENTINEL-command-agent")
    root, _ = init_workspace(tmp_path / "ws")
    return root


def campaign_with(root, tmp_path, roles: dict, max_candidates: int, **caps):
    (tmp_path / "agent.py").write_text(STAND_IN)
    (tmp_path / "roles.json").write_text(json.dumps(roles))
    command = f"{sys.executable} {tmp_path / 'agent.py'} {tmp_path / 'roles.json'} {tmp_path / 'agent.pid'}"
    proposer = CommandProposer(command, **caps)
    options = CampaignOptions(proposer="command", max_candidates=max_candidates, agent_cmd=command)
    runner = FakeRunner(crash_when={"lr": 0.5}, crash_log=CRASH_LOG)
    profile = load_profile(root, "fed_heart_disease")
    return Campaign(root, profile, TAG, options, proposer, run_fn=runner)


def test_a_stand_in_agent_reads_the_crash_log_and_cites_the_bibliography(workspace, tmp_path):
    # c004 investigates: a slot scheduler may propose c003 while c002 still runs
    campaign = campaign_with(workspace, tmp_path, {"c002": "crash", "c004": "research"}, 6)
    campaign.start()
    records = Ledger(campaign.dir).latest_candidates()
    assert len(records) == 6 and records["c002"]["status"] == "crash"
    cited = records["c004"]
    assert cited["status"] in ("keep", "discard"), cited.get("error")
    assert f"[src: {CITED}]" in cited["description"] and "ValueError: Input contains NaN" in cited["description"]
    assert cited["edited_files"] == ["tasks/shared/training.py"] and cited["proposer"] == "command"
    assert "clip_grad_norm_" in campaign.repo.diff(cited["parent"], cited["commit"])
    transcript = (campaign.dir / cited["telemetry"]["transcript"]).read_text()
    assert "$ afr tool get_job_log" in transcript and "ValueError: Input contains NaN" in transcript
    assert f'"source": "{CITED}"' in transcript and cited["telemetry"]["exit_code"] == 0
    brief = (campaign.dir / "runs" / "c004" / "agent-brief.md").read_text()
    assert "program.md: how an afr campaign is run" in brief and "crashes: c002" in brief
    # Provider keys are scrubbed from the agent's environment.
    assert "provider key visible: False" in (campaign.dir / "runs" / "c003" / "agent.log").read_text()


def test_tampering_is_refused_by_the_guard_and_a_hang_is_killed_at_the_cap(workspace, tmp_path):
    roles = {"c002": "protected", "c003": "escape", "c004": "hang", "c005": "noisy"}
    campaign = campaign_with(workspace, tmp_path, roles, 3, timeout=4, max_output=1000)
    results_before = None

    def remember_results(event):
        nonlocal results_before
        if event.type is EventType.CANDIDATE_REVIEWED and event.data["id"] == "c001":
            results_before = (campaign.dir / "results.tsv").read_text()

    campaign.subscribe(remember_results)
    started = time.time()
    campaign.start()
    records = Ledger(campaign.dir).latest_candidates()
    assert records["c002"]["status"] == "rejected"
    assert records["c002"]["error"] == "surface: tasks/fed_heart_disease/data.py is protected"
    assert records["c003"]["status"] == "rejected" and "escapes the workspace" in records["c003"]["error"]
    assert sorted(records["c003"]["telemetry"]["escaped"])[0].endswith("escaped.txt")
    assert "tampered" not in (campaign.dir / "results.tsv").read_text()
    assert (campaign.dir / "results.tsv").read_text().startswith(results_before)
    assert records["c004"]["status"] == "rejected"
    assert records["c004"]["error"] == "proposer: the agent command ran past its 4 s cap and was killed"
    pid = int((tmp_path / "agent.pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    noisy = records["c005"]
    assert noisy["status"] in ("keep", "discard") and noisy["telemetry"]["truncated"] is True
    log = (campaign.dir / "runs" / "c005" / "agent.log").read_bytes()
    assert len(log) < 1200 and b"output truncated at 1000 bytes" in log
    assert time.time() - started < 120


def test_the_environment_keeps_only_the_keys_the_user_passes(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "b-secret")
    env = agent_environment(["ANTHROPIC_API_KEY"], {"AFR_CANDIDATE": "c002"})
    assert env["ANTHROPIC_API_KEY"] == "a-secret" and "MY_SERVICE_TOKEN" not in env
    assert env["AFR_CANDIDATE"] == "c002" and env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--model", "openai/x"], "llm"),
        (["run", "--agent-cmd", "codex exec -"], "command"),
        (["run"], "scripted"),
        (["run", "--proposer", "llm", "--model", "openai/x"], "llm"),
    ],
)
def test_model_or_agent_cmd_selects_the_proposer(argv, expected):
    assert resolve_proposer(build_parser().parse_args(argv)) == expected


def test_a_contradicting_proposer_is_a_one_line_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for argv, message in [
        (["--model", "openai/x", "--proposer", "scripted"], "--model selects the llm proposer"),
        (["--proposer", "command"], "--proposer command needs --agent-cmd"),
        (["--model", "openai/x", "--agent-cmd", "x"], "select different proposers"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "afr.cli", "run", "--workspace", str(tmp_path), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.nvflare
def test_afr_run_with_an_agent_command_runs_its_code_change_on_nvflare(tmp_path):
    """The whole path once: `afr run --agent-cmd` (the CLI), the stand-in's edit, the guard, a real job."""
    root, _ = init_workspace(tmp_path / "ws")
    (tmp_path / "agent.py").write_text(STAND_IN)
    (tmp_path / "roles.json").write_text(json.dumps({"c002": "research"}))
    command = f"{sys.executable} {tmp_path / 'agent.py'} {tmp_path / 'roles.json'} {tmp_path / 'agent.pid'}"
    tag = "cmd-20261125"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "run", "--workspace", str(root), "--tag", tag, "--agent-cmd", command,
         "--max-candidates", "2", "--smoke", "--no-confirm", "--headless"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = Ledger(root / ".afr" / "campaigns" / tag).latest_candidates()
    agent = records["c002"]
    assert agent["proposer"] == "command" and agent["status"] in ("keep", "discard"), agent.get("error")
    assert agent["edited_files"] == ["tasks/shared/training.py"] and 0 < agent["score"] <= 1
    # c002 had no crash to read: the stand-in's log search found nothing and it still cited its source
    assert f"[src: {CITED}]" in agent["description"]


def test_ledger_repair_keeps_the_engines_appends_and_drops_the_agents_edits(tmp_path):
    from engine.agent import ledger_guard

    header = "commit\tscore\truntime_seconds\tbudget\tstatus\ttarget\tdescription\tartifacts\n"
    row = "abc1234\t{score}\t1.0\tsmoke\tkeep\tscalar\t{what}\truns/{cid}\n"
    results = tmp_path / "results.tsv"
    results.write_text(header + row.format(score="0.61", what="baseline", cid="c001"))
    (tmp_path / "campaign.json").write_text('{"tag": "x"}')
    before = ledger_guard.snapshot(tmp_path)
    engine_row = row.format(score="0.63", what="fedavgm", cid="c002")
    with results.open("a") as out:  # the engine records a candidate that finished meanwhile
        out.write(engine_row)
    assert ledger_guard.repair(tmp_path, before) == [] and results.read_text().endswith(engine_row)
    before = ledger_guard.snapshot(tmp_path)
    forged = results.read_text().replace("0.61", "0.99") + "tampered\n"
    engine_row2 = row.format(score="0.64", what="fedprox", cid="c003")
    results.write_text(forged + engine_row2)
    (tmp_path / "campaign.json").write_text('{"tag": "y"}')
    assert ledger_guard.repair(tmp_path, before) == ["campaign.json", "results.tsv"]
    text = results.read_text()
    assert "0.99" not in text and "tampered" not in text and text.endswith(engine_row + engine_row2)
    assert (tmp_path / "campaign.json").read_text() == '{"tag": "x"}'
