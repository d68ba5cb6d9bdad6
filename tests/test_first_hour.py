"""A researcher's first hour (issue 13), from the user's side: the ``afr`` command in subprocesses.

Wrong workspaces, torn and malformed ledgers, failed resumes, a dead LLM endpoint, help texts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest
from openai_server import ScriptedOpenAI
from tui_helpers import ROOT, TAG, fixed_campaign

from engine.profile import load_profile
from engine.store.ledger import Ledger

BAD_TAG = "broken-20261123"


def afr(*args, cwd, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "afr.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One ``afr init`` workspace, copied per test (init copies the whole bundle)."""
    base = tmp_path_factory.mktemp("template")
    done = afr("init", str(base / "ws"), cwd=base)
    assert done.returncode == 0, done.stderr
    return base / "ws"


@pytest.fixture
def workspace(template, tmp_path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(template, target, symlinks=True)
    return target


def campaigns_of_the_checkout() -> set[str]:
    base = ROOT / ".afr" / "campaigns"
    return {p.name for p in base.iterdir()} if base.is_dir() else set()


# -- the wrong workspace, silently -------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["plain", "empty-git"])
def test_run_outside_a_workspace_is_one_line_and_never_touches_afrs_own_tree(tmp_path, folder):
    where = tmp_path / folder
    where.mkdir()
    if folder == "empty-git":
        git.Repo.init(where)
    before = campaigns_of_the_checkout()
    done = afr("run", "--headless", "--smoke", "--max-candidates", "1", "--tag", "x-20261123", cwd=where)
    message = one_line(done)
    assert "no afr workspace" in message and "afr init DIR" in message and str(where) in message
    assert campaigns_of_the_checkout() == before
    assert not (where / ".afr").exists()
    for command in (["list"], ["status"], ["resume"]):
        assert "afr init DIR" in one_line(afr(*command, cwd=where))


def test_list_and_status_from_a_subfolder_find_the_enclosing_workspace(workspace):
    fixed_campaign(workspace.parent)  # a campaign in ws/.afr/campaigns/TAG
    deep = workspace / "tasks" / "fed_heart_disease"
    listed = afr("list", cwd=deep)
    assert listed.returncode == 0, listed.stderr
    assert TAG in listed.stdout
    status = afr("status", "--json", cwd=deep)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["directory"].startswith(str(workspace))


def test_afrs_own_tree_is_a_workspace_only_when_named(tmp_path):
    message = one_line(afr("list", cwd=ROOT / "tasks"))
    assert "afr's own tree" in message and "--workspace" in message
    named = afr("list", "--workspace", str(ROOT), cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    # Reading the bundled profiles anywhere stays possible.
    data = afr("data", "fed_heart_disease", "--json", cwd=tmp_path)
    assert data.returncode == 0 and json.loads(data.stdout)["total_samples"] == 740


# -- lost rows, malformed ledgers, state written before its checks --------------------------------------


def full_records(directory: Path) -> None:
    """Give every candidate the full record a campaign writes (score, runtime, target, budget)."""
    ledger = Ledger(directory)
    rows = {row.artifacts.removeprefix("runs/"): row for row in ledger.rows()}
    for cid, record in ledger.latest_candidates().items():
        row = rows[cid]
        ledger.append_candidate(
            {
                **record,
                "score": row.score,
                "runtime_seconds": row.runtime_seconds,
                "target": row.target,
                "budget": row.budget,
            }
        )


def real_campaign(workspace: Path) -> Path:
    """The fixed campaign made resumable: protected hashes recorded, its git branch made, cap reached."""
    directory = fixed_campaign(workspace.parent)
    meta = json.loads((directory / "campaign.json").read_text())
    meta["protected_hashes"] = {}
    meta["options"] = {**meta["options"], "max_candidates": 6}
    (directory / "campaign.json").write_text(json.dumps(meta))
    git.Repo(workspace).git.branch(f"autoresearch/{TAG}")
    full_records(directory)
    return directory


def test_a_torn_last_row_is_reported_and_rebuilt_before_resume_appends(workspace):
    directory = real_campaign(workspace)
    results = directory / "results.tsv"
    whole = results.read_text()
    last = whole.splitlines()[-1]
    results.write_text(whole[: -len(last) - 1] + last[:12])  # a crash cut the last write
    status = afr("status", "--json", cwd=workspace)
    assert status.returncode == 0
    assert "results.tsv ends in a cut line" in status.stderr and str(results) in status.stderr
    assert f"afr resume {TAG}" in status.stderr
    listed = afr("list", cwd=workspace)
    assert "ledger needs repair" in listed.stdout
    done = afr("resume", TAG, "--headless", cwd=workspace, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ledger repaired" in done.stdout and "restored the row of c006" in done.stdout
    assert results.read_text() == whole  # the row is back, exactly as it was
    assert afr("status", cwd=workspace).stderr == ""


def corrupt_second_campaign(workspace: Path) -> Path:
    good = fixed_campaign(workspace.parent)
    bad = good.parent / BAD_TAG
    shutil.copytree(good, bad)
    meta = json.loads((bad / "campaign.json").read_text())
    meta.update(tag=BAD_TAG, created=meta["created"] + 1, protected_hashes={})
    (bad / "campaign.json").write_text(json.dumps(meta))
    lines = (bad / "results.tsv").read_text().splitlines(keepends=True)
    lines[3] = "abc1234\tnot-a-score\n"
    (bad / "results.tsv").write_text("".join(lines))
    return bad


def test_a_malformed_line_fails_only_its_own_campaign(workspace):
    bad = corrupt_second_campaign(workspace)
    listed = afr("list", cwd=workspace)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.startswith(TAG) and "UNREADABLE" not in line for line in lines)
    assert any(line.startswith(BAD_TAG) and "UNREADABLE" in line for line in lines)
    assert f"campaign {BAD_TAG}" in listed.stderr and f"{bad / 'results.tsv'} line 4" in listed.stderr
    message = one_line(afr("status", BAD_TAG, cwd=workspace))
    assert f"campaign {BAD_TAG}" in message and "results.tsv line 4" in message
    assert afr("status", TAG, cwd=workspace).returncode == 0


def test_a_failed_resume_writes_no_state(workspace):
    bad = corrupt_second_campaign(workspace)
    journal, meta = (bad / "journal.jsonl").read_bytes(), (bad / "campaign.json").read_bytes()
    message = one_line(afr("resume", BAD_TAG, "--headless", "--max-candidates", "9", cwd=workspace))
    assert f"campaign {BAD_TAG}" in message and "results.tsv line 4" in message
    assert (bad / "journal.jsonl").read_bytes() == journal  # no "state: running" with no engine
    assert (bad / "campaign.json").read_bytes() == meta


def test_a_malformed_journal_line_is_named(workspace):
    directory = fixed_campaign(workspace.parent)
    with open(directory / "journal.jsonl", "a") as handle:
        handle.write("{not json\n")
    message = one_line(afr("status", cwd=workspace))
    assert f"campaign {TAG}" in message and "journal.jsonl line" in message


# -- an LLM campaign that cannot work does not start ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llm_run(*extra: str) -> list[str]:
    return [
        "run",
        "--proposer",
        "llm",
        "--headless",
        "--smoke",
        "--max-candidates",
        "2",
        "--tag",
        "llm-20261123",
        *extra,
    ]


def no_keys() -> dict:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


def test_no_key_is_one_line_naming_the_variable_and_nothing_starts(workspace):
    message = one_line(afr(*llm_run("--model", "openai/gpt-4o-mini"), cwd=workspace, env=no_keys()))
    assert "OPENAI_API_KEY" in message and "environment" in message
    assert not (workspace / ".afr" / "campaigns" / "llm-20261123").exists()


def test_a_dead_endpoint_is_one_line_at_once(workspace):
    started = time.monotonic()
    base = f"http://127.0.0.1:{free_port()}/v1"
    message = one_line(afr(*llm_run("--model", "openai/local", "--api-base", base), cwd=workspace))
    assert "connection error" in message and base in message and "--api-base" in message
    assert time.monotonic() - started < 60  # no minutes of retries
    assert not (workspace / ".afr" / "campaigns" / "llm-20261123").exists()


@pytest.mark.parametrize(("status", "kind"), [(401, "auth error"), (404, "not found error")])
def test_a_refusing_endpoint_is_one_line_with_its_kind(workspace, status, kind):
    with ScriptedOpenAI([{"status": status}] * 5) as server:
        done = afr(*llm_run("--model", "openai/local", "--api-base", server.base_url), cwd=workspace)
        requests = len(server.requests)
    assert kind in one_line(done)
    assert requests == 1  # not retried
    assert not (workspace / ".afr" / "campaigns" / "llm-20261123").exists()


# -- help, wording, the watchdog ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "repeat", "resume", "heldout"])
def test_every_option_has_help_and_defaults_show(command, tmp_path):
    done = afr(command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    options = done.stdout.split("options:", 1)[1]
    entries = [e for e in options.split("\n  -") if e.strip()]
    for entry in entries:
        flag, _, rest = entry.strip().partition("  ")
        assert rest.strip() or "\n" in entry, f"{command} {flag} has no help"
    if command == "run":
        assert "(default: 30)" in done.stdout and "scripted (default)" in done.stdout
    if command == "repeat":
        assert "(default: 1)" in done.stdout


def test_parallel_abc_says_something_human(tmp_path):
    done = afr("run", "--parallel", "abc", cwd=tmp_path)
    assert done.returncode == 2
    assert "must be a positive integer, not 'abc'" in done.stderr and "positive_int" not in done.stderr


def test_bundled_watchdogs_fire_within_the_default_campaign(tmp_path):
    help_text = afr("run", "--help", cwd=tmp_path).stdout
    default_cap = int(help_text.split("stop after this many candidates (default: ")[1].split(")")[0])
    for name in ("fed_heart_disease", "leaf_synthetic"):
        threshold = load_profile(ROOT, name).watchdog.max_scored_since_reset
        assert threshold + 2 < default_cap, f"{name}: the plateau loop could never fire in {default_cap}"


def test_diff_lists_only_changes_against_the_parent_and_opens_literature_rows(workspace):
    directory = fixed_campaign(workspace.parent)
    (directory / "literature").mkdir()
    (directory / "literature" / "001.md").write_text("# Literature review 1\n\nFedProx (Li et al. 2020)\n")
    # c006 was proposed after c003 (fedadam, server_lr 0.03) was kept: its change is fedadam_tau only.
    done = afr("diff", "c006", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "parent: c003 (kept)" in done.stdout
    changed = [line.strip() for line in done.stdout.splitlines() if " -> " in line]
    baseline = load_profile(ROOT, "fed_heart_disease").baseline
    # fedadam on both sides is no change; c006 does not carry c003's server_lr, so it reverts.
    assert changed == [
        f"fedadam_tau: {baseline['fedadam_tau']} -> 0.0007",
        f"server_lr: 0.03 -> {baseline['server_lr']}",
    ]
    literature = afr("diff", "L001", cwd=workspace)
    assert literature.returncode == 0 and "FedProx (Li et al. 2020)" in literature.stdout
    assert "no literature review L002" in one_line(afr("diff", "L002", cwd=workspace))


def test_status_and_list_speak_in_words(workspace):
    directory = fixed_campaign(workspace.parent)
    with open(directory / "journal.jsonl") as handle:
        seq = sum(1 for _ in handle)
    from engine.control.events import Event, EventType

    with open(directory / "journal.jsonl", "a") as handle:
        handle.write(
            Event(
                EventType.PAUSED, {"note": "cost cap reached: $5.0000 of $5.0000"}, 1.9e9, seq + 1
            ).to_json()
            + "\n"
        )
        handle.write(Event(EventType.STATE, {"state": "paused"}, 1.9e9, seq + 2).to_json() + "\n")
    done = afr("status", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "paused (cost cap reached: $5.0000 of $5.0000)" in done.stdout
    assert "6 candidates" in done.stdout and "1 crash" in done.stdout and "1 crashes" not in done.stdout
    assert json.loads(afr("status", "--json", cwd=workspace).stdout)["reason"].startswith("cost cap")


@pytest.mark.parametrize(
    ("steps", "kind", "requests"),
    [
        ([{"status": 401}] * 4, "auth", 1),
        ([{"status": 404}] * 4, "not found", 1),
        ([{"status": 429}] * 4, "rate limit", 3),
        ([{"status": 500}] * 4, "server", 3),
    ],
)
def test_provider_errors_are_classified_and_only_transient_ones_retried(steps, kind, requests):
    from engine.agent.base import ProposerError
    from engine.agent.llm import LLMProposer, new_telemetry

    with ScriptedOpenAI(steps) as server:
        proposer = LLMProposer("openai/local", api_base=server.base_url, retries=2, backoff=0.01)
        with pytest.raises(ProposerError) as caught:
            proposer._complete([{"role": "user", "content": "hi"}], new_telemetry("openai/local"))
        assert len(server.requests) == requests
    assert caught.value.kind == kind and f"({kind} error:" in str(caught.value)


def test_a_refused_connection_is_not_retried():
    import litellm  # noqa: F401  (its import is slow; time only the call)

    from engine.agent.base import ProposerError
    from engine.agent.llm import LLMProposer, new_telemetry

    proposer = LLMProposer(
        "openai/local", api_base=f"http://127.0.0.1:{free_port()}/v1", retries=3, backoff=5
    )
    started = time.monotonic()
    with pytest.raises(ProposerError) as caught:
        proposer._complete([{"role": "user", "content": "hi"}], new_telemetry("openai/local"))
    assert caught.value.kind == "connection" and time.monotonic() - started < 5


def test_a_dropped_connection_is_retried_not_taken_for_a_dead_endpoint():
    # A kept-alive connection the server closed, or a reset, arrives as the same "Connection
    # error." as a refused connect: it once paused a campaign at its first proposal.
    from engine.agent.llm import LLMProposer, new_telemetry

    with ScriptedOpenAI([{"drop": True}, {"text": "hello"}]) as server:
        proposer = LLMProposer("openai/local", api_base=server.base_url, retries=2, backoff=0.01)
        telemetry = new_telemetry("openai/local")
        response = proposer._complete([{"role": "user", "content": "hi"}], telemetry)
    assert response.choices[0].message.content == "hello"
    assert len(server.requests) == 2 and telemetry["errors"][0].startswith("server error:")


def test_compare_warns_when_a_smoke_campaign_sits_beside_a_full_one(workspace):
    full = fixed_campaign(workspace.parent)
    smoke = full.parent / "smoke-20261123"
    shutil.copytree(full, smoke)
    meta = json.loads((smoke / "campaign.json").read_text())
    meta.update(tag="smoke-20261123", options={**meta["options"], "smoke": True})
    (smoke / "campaign.json").write_text(json.dumps(meta))
    text = (smoke / "results.tsv").read_text().replace("clients=4;rounds=15", "smoke:clients=4;rounds=1")
    (smoke / "results.tsv").write_text(text)
    done = afr("compare", TAG, "smoke-20261123", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "different budgets" in done.stderr and "smoke:clients=4;rounds=1" in done.stderr
    same = afr("compare", TAG, cwd=workspace)
    assert same.returncode == 0 and "different budgets" not in same.stderr


def test_console_events_read_as_words():
    from afr.console import plain_line
    from engine.control.events import Event, EventType

    samples = {
        EventType.LITERATURE_STARTED: {"reason": "plateau: 12 scored since the last improvement"},
        EventType.LITERATURE_FINISHED: {
            "worksheet": "literature/001.md",
            "selected": ["literature: FedProx"],
        },
        EventType.PAUSED: {"note": "cost cap reached"},
        EventType.RESUMED: {},
        EventType.STOPPED: {"phase": "done", "reason": "stopped by the human"},
        EventType.FINISHED: {"reason": "candidate cap reached (30/30)"},
        EventType.ERROR: {"message": "subscriber removed"},
        EventType.LEDGER_REPAIRED: {"actions": ["results.tsv: restored the row of c006"]},
        EventType.CANDIDATE_REJECTED: {"id": "c002", "reason": "proposer: auth error", "by": "proposer"},
    }
    lines = {kind: plain_line(Event(kind, data, 1.0, 1)) for kind, data in samples.items()}
    assert all(line and "{" not in line and "[]" not in line for line in lines.values()), lines
    assert lines[EventType.LITERATURE_FINISHED] == (
        "literature review done (literature/001.md): 1 idea: literature: FedProx"
    )
    assert lines[EventType.CANDIDATE_REJECTED] == "[c002] rejected by the proposer: proposer: auth error"
