"""The campaign state machine through its command entry point.

These tests use ``FakeRunner`` (tests/fakes.py) so the loop's logic runs in seconds; the
real NVFlare path is covered by test_campaign_nvflare.py.
"""

from __future__ import annotations

import threading
import time

import git
import pytest
from fakes import FakeRunner

from engine.agent.base import CandidateSpec
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignError, CampaignOptions
from engine.campaign.status import summary
from engine.control.events import Command, CommandType, EventType
from engine.profile import load_profile
from engine.run.retry import PORT_RACE_ERROR
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

TAG = "test-20261122"


@pytest.fixture
def workspace(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    return root


class ListProposer(ScriptedProposer):
    """Proposes the given specs first, then falls back to the scripted sequence."""

    name = "list"

    def __init__(self, specs):
        self.specs = list(specs)

    def propose(self, context):
        return self.specs.pop(0) if self.specs else super().propose(context)


def make(workspace, runner=None, proposer=None, **options):
    profile = load_profile(workspace, "fed_heart_disease")
    campaign = Campaign(
        workspace,
        profile,
        TAG,
        CampaignOptions(**{"confirm": False, **options}),  # the reference keep rule; test_confirm.py: confirm
        proposer or ScriptedProposer(),
        run_fn=runner or FakeRunner(),
    )
    events = []
    campaign.subscribe(events.append)
    return campaign, events


def in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def wait_for(events, predicate, timeout=120.0):  # generous: a loaded machine is slow to start
    deadline = time.time() + timeout
    while time.time() < deadline:
        for event in list(events):
            if predicate(event):
                return event
        time.sleep(0.02)
    raise AssertionError(f"no matching event; saw {[e.type.value for e in events][-15:]}")


def test_twelve_candidates_end_to_end(workspace):
    runner = FakeRunner()
    campaign, events = make(workspace, runner, max_candidates=12)
    campaign.start()
    rows = campaign.ledger.rows()
    assert len(rows) == 12 and rows[0].target == "baseline"
    assert {r.status for r in rows} <= {"keep", "discard", "crash"}
    assert rows[0].status == "keep"
    assert sum(r.status == "keep" for r in rows[1:]) >= 1  # FedAdam beats the fake baseline
    log = git.Repo(workspace).git.log("--format=%s", f"autoresearch/{TAG}")
    assert "keep c001" in log and "keep c003" in log
    assert git.Repo(workspace).head.ref.name == "main"  # the user's checkout was never switched
    records = Ledger(campaign.dir).latest_candidates()
    assert records["c003"]["arg_changes"] == {
        "aggregator": ["sample_weighted", "fedadam"],
        "server_lr": [1.0, 0.03],
    }
    assert records["c003"]["validation"] == dict.fromkeys(
        ("surface", "args", "contract", "compile", "model", "integrity"), "ok"
    )
    assert records["c002"]["timings"]["engine_seconds"] < 5
    timing = summary(workspace, TAG)["time"]  # afr status: where the time went, candidates per hour
    assert timing["finished"] == 12 and timing["candidates_per_hour"] > 0
    assert timing["phase_seconds"]["engine_seconds"] > 0
    assert events[-1].type is EventType.FINISHED
    journal = (campaign.dir / "journal.jsonl").read_text().splitlines()
    assert len(journal) == events[-1].seq
    # every run used its own worktree, and none is left behind
    assert all(call["root"].name.startswith("c") for call in runner.calls)
    assert not any((campaign.dir / "worktrees").iterdir())
    with pytest.raises(CampaignError, match="already exists"):
        make(workspace)[0].start()


def test_code_change_becomes_a_commit_and_diff(workspace):
    client = (workspace / "tasks/fed_heart_disease/client.py").read_text()
    edited = client.replace(
        "loss_fn = torch.nn.BCEWithLogitsLoss()",
        "loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(0.8))",
    )
    spec = CandidateSpec(
        "class-weighted BCE", "code", {"lr": 0.01}, {"tasks/fed_heart_disease/client.py": edited}
    )
    baseline = CandidateSpec("baseline", "baseline", {})
    campaign, _ = make(workspace, proposer=ListProposer([baseline, spec]), max_candidates=2)
    campaign.start()
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["commit"] != record["parent"] and record["edited_files"] == [
        "tasks/fed_heart_disease/client.py"
    ]
    diff = campaign.repo.diff(record["parent"], record["commit"])
    assert "pos_weight=torch.tensor(0.8)" in diff
    assert record["status"] == "keep"
    assert record["commit"] in git.Repo(workspace).git.rev_list(f"autoresearch/{TAG}")
    # c002 was prepared while the baseline ran, so the tip had moved on (the baseline's keep and
    # checkpoint): the branch still carries exactly the code that scored.
    tip_client = git.Repo(workspace).git.show(f"autoresearch/{TAG}:tasks/fed_heart_disease/client.py")
    assert tip_client == edited.rstrip("\n")  # git show drops the final newline


def test_a_keep_prepared_before_another_keep_lands_its_own_tree(workspace):
    """Two code candidates from the same parent, both kept in turn (several slots): the branch ends
    on the tree that scored last, with both commits in its history and the tip's results.tsv."""
    from engine.store.workspace import CampaignRepo

    repo = CampaignRepo(workspace, TAG)
    base = repo.start()
    path = "tasks/fed_heart_disease/client.py"
    commits = {}
    for cid, marker in (("c001", "# mechanism A"), ("c002", "# mechanism B")):
        tree = repo.worktree_for(cid, base)
        (tree / path).write_text((tree / path).read_text() + marker + "\n")
        commits[cid] = repo.commit_candidate(tree, f"{cid}: {marker}")
        repo.remove_worktree(cid)
    ledger = workspace / "results.tsv"
    ledger.write_text("commit\tscore\n")
    repo.keep(commits["c001"], "keep c001")
    repo.checkpoint(ledger, "results.tsv checkpoint: 1 rows")
    tip = repo.keep(commits["c002"], "keep c002")
    shown = git.Repo(workspace).git
    assert shown.show(f"{tip}:{path}").endswith("# mechanism B") and "# mechanism A" not in shown.show(f"{tip}:{path}")
    assert shown.show(f"{tip}:results.tsv") == "commit\tscore"
    history = shown.rev_list(tip)
    assert commits["c001"] in history and commits["c002"] in history and repo.head() == tip


BAD = [
    ("unknown arg", {"dropout": 0.2}, {}, "args: dropout: not a mutable arg"),
    ("out of range", {"lr": 5.0}, {}, "args: lr: 5.0 is outside"),
    ("budget changed", {"num_rounds": 30}, {}, "args: num_rounds: a fixed budget field cannot change"),
    ("protected file", {}, {"tasks/fed_heart_disease/data.py": "# mine\n"}, "is protected"),
    ("outside editable", {}, {"profiles/fed_heart_disease.toml": "x = 1\n"}, "is not an editable file"),
    ("path escape", {}, {"../outside.py": "x = 1\n"}, "escapes the workspace"),
    (
        "unregistered arch",
        {"model_arch": "resnet50"},
        {},
        "model: unknown architecture 'resnet50'; registered:",
    ),
]


@pytest.mark.parametrize(("what", "args", "edits", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_candidates_are_rejected_before_running(workspace, what, args, edits, reason):
    runner = FakeRunner()
    bad = CandidateSpec(f"bad: {what}", "scalar", args, edits)
    campaign, events = make(
        workspace,
        runner,
        proposer=ListProposer([CandidateSpec("baseline", "baseline"), bad]),
        max_candidates=2,
    )
    campaign.start()
    rejected = next(e for e in events if e.type is EventType.CANDIDATE_REJECTED)
    assert rejected.data["id"] == "c002" and reason in rejected.data["reason"]
    assert "\n" not in rejected.data["reason"]
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["status"] == "rejected" and reason in record["error"]
    assert all(r.artifacts != "runs/c002" for r in campaign.ledger.rows())
    assert all(call["args"] != args or not args for call in runner.calls[1:2])
    assert not (workspace / "outside.py").exists() and not (workspace.parent / "outside.py").exists()


def test_manual_approval_waits_then_approve_runs_and_reject_records_the_note(workspace):
    runner = FakeRunner()
    campaign, events = make(workspace, runner, max_candidates=3, approval="manual")
    thread = in_thread(campaign.start)
    first = wait_for(events, lambda e: e.type is EventType.CANDIDATE_AWAITING_APPROVAL)
    time.sleep(0.3)
    assert runner.calls == [] and campaign.state == "awaiting_approval"
    assert first.data["checks"]["contract"] == "ok"
    campaign.command(Command(CommandType.APPROVE, first.data["id"], note="looks fine"))
    second = wait_for(
        events, lambda e: e.type is EventType.CANDIDATE_AWAITING_APPROVAL and e.data["id"] == "c002"
    )
    assert len(runner.calls) == 1
    campaign.command(Command(CommandType.REJECT, second.data["id"], note="server momentum is pointless here"))
    third = wait_for(
        events, lambda e: e.type is EventType.CANDIDATE_AWAITING_APPROVAL and e.data["id"] == "c003"
    )
    campaign.command(Command(CommandType.SET_APPROVAL, value="auto"))
    thread.join(timeout=20)
    records = Ledger(campaign.dir).latest_candidates()
    assert records["c002"]["status"] == "rejected"
    assert records["c002"]["human"] == {"decision": "reject", "note": "server momentum is pointless here"}
    assert "c002 rejected: server momentum is pointless here" in campaign.notes
    assert len(runner.calls) == 3 and third.data["id"] == "c003"
    assert [r.artifacts for r in campaign.ledger.rows()] == ["runs/c001", "runs/c003", "runs/c004"]
    with pytest.raises(ValueError, match="not awaiting approval"):
        campaign.command(Command(CommandType.APPROVE, "c009"))


def test_pause_stops_new_candidates_and_resume_continues(workspace):
    runner = FakeRunner(delay=0.3)
    campaign, events = make(workspace, runner, max_candidates=6)
    thread = in_thread(campaign.start)
    wait_for(events, lambda e: e.type is EventType.CANDIDATE_STARTED and e.data["id"] == "c002")
    campaign.command(Command(CommandType.PAUSE))
    wait_for(events, lambda e: e.type is EventType.STATE and e.data["state"] == "paused")
    count = len(runner.calls)
    time.sleep(1.0)
    assert len(runner.calls) == count  # the running candidate finished; no new one started
    assert campaign.ledger.rows()[-1].artifacts == "runs/c002"
    campaign.command(Command(CommandType.RESUME))
    thread.join(timeout=30)
    assert len(campaign.ledger.rows()) == 6


def test_stop_ends_the_campaign_after_the_running_candidate(workspace):
    runner = FakeRunner(delay=0.3)
    campaign, events = make(workspace, runner, max_candidates=20)
    thread = in_thread(campaign.start)
    wait_for(events, lambda e: e.type is EventType.CANDIDATE_STARTED and e.data["id"] == "c003")
    campaign.command(Command(CommandType.STOP, note="enough"))
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert campaign.state == "stopped" and len(campaign.ledger.rows()) == 3
    assert events[-1].type is EventType.STOPPED and events[-1].data["phase"] == "done"


def test_force_literature_adds_a_literature_row_and_cited_candidates(workspace):
    campaign, events = make(workspace, FakeRunner(delay=0.1), max_candidates=5)
    thread = in_thread(campaign.start)
    wait_for(events, lambda e: e.type is EventType.CANDIDATE_STARTED and e.data["id"] == "c002")
    campaign.command(Command(CommandType.FORCE_LITERATURE))
    thread.join(timeout=30)
    rows = campaign.ledger.rows()
    literature = [r for r in rows if r.status == "literature"]
    assert len(literature) == 1 and literature[0].budget == "literature_loop" and literature[0].score is None
    assert (campaign.dir / literature[0].artifacts).read_text().startswith("# Literature review")
    # The first candidate proposed after the review implements it (one prepared ahead may run first).
    reviewed = _order(events, EventType.LITERATURE_FINISHED, None)
    first = next(e.data["id"] for e in events if e.type is EventType.CANDIDATE_PROPOSED and e.seq > reviewed)
    after = next(r for r in rows if r.artifacts == f"runs/{first}")
    assert after.target == "literature" and "[src: arXiv:" in after.description


def test_watchdog_triggers_literature_on_a_plateau(workspace):
    profile = load_profile(workspace, "fed_heart_disease")
    flat = profile.model_copy(
        update={"watchdog": profile.watchdog.model_copy(update={"max_scored_since_reset": 3})}
    )
    campaign = Campaign(
        workspace, flat, TAG, CampaignOptions(max_candidates=9), ScriptedProposer(), run_fn=FakeRunner()
    )
    campaign.start()
    statuses = [r.status for r in campaign.ledger.rows()]
    assert "literature" in statuses


def test_override_rewrites_status_and_advances_the_branch(workspace):
    campaign, _ = make(workspace, max_candidates=3)
    campaign.start()
    assert campaign.ledger.rows()[1].status == "discard"
    campaign.command(Command(CommandType.OVERRIDE, "c002", note="keep for the repeat study", value="keep"))
    assert campaign.ledger.rows()[1].status == "keep"
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["human"] == {"decision": "override:keep", "note": "keep for the repeat study"}
    assert "c002 (human override)" in git.Repo(workspace).git.log("-1", "--format=%s", f"autoresearch/{TAG}")


def test_crashing_candidates_are_rows_with_score_zero_and_log_tail(workspace):
    campaign, _ = make(workspace, FakeRunner(crash_when={"aggregator": "fedavgm"}), max_candidates=3)
    campaign.start()
    crash = campaign.ledger.rows()[1]
    assert crash.status == "crash" and crash.score == 0.0
    record = Ledger(campaign.dir).latest_candidates()["c002"]
    assert record["log_tail"] == ["RuntimeError: boom"] and record["error"] == "RuntimeError: boom"


def _client_with(old: str, new: str, workspace) -> dict:
    source = (workspace / "tasks/fed_heart_disease/client.py").read_text()
    assert old in source
    return {"tasks/fed_heart_disease/client.py": source.replace(old, new, 1)}


CODE_BREAKS = [
    (
        "syntax error",
        "tasks/fed_heart_disease/model.py",
        "def count_parameters(",
        "def count_parameters((",
        "compile: tasks/fed_heart_disease/model.py:",
    ),
    (
        "FULL instead of DIFF",
        "client",
        "params_type=ParamsType.DIFF",
        "params_type=ParamsType.FULL",
        "contract: tasks/fed_heart_disease/client.py: no FLModel(..., params_type=ParamsType.DIFF)",
    ),
    (
        "no NUM_STEPS_CURRENT_ROUND",
        "client",
        '"NUM_STEPS_CURRENT_ROUND"',
        '"steps"',
        'contract: tasks/fed_heart_disease/client.py: no "NUM_STEPS_CURRENT_ROUND"',
    ),
    (
        "no strict load",
        "client",
        "model.load_state_dict(global_state, strict=True)",
        "model.load_state_dict(global_state, strict=False)",
        "no load_state_dict(..., strict=True)",
    ),
    (
        "held-out tampering",
        "client",
        "import argparse\n",
        'import argparse\nimport os\n\nos.environ["AFR_EVAL_SUBSET"] = "full"\n',
        "client.py names AFR_EVAL_SUBSET: only the engine chooses the evaluation subset",
    ),
    (
        "over-cap architecture",
        "tasks/fed_heart_disease/model.py",
        '"mlp32": lambda: _mlp(32)',
        '"mlp32": lambda: _mlp(4096)',
        "model: architecture 'mlp32' has 61441 parameters, over the cap of 2000",
    ),
]


@pytest.mark.parametrize(
    ("what", "path", "old", "new", "reason"), CODE_BREAKS, ids=[c[0] for c in CODE_BREAKS]
)
def test_code_that_breaks_the_contract_is_rejected(workspace, what, path, old, new, reason):
    if path == "client":
        edits = _client_with(old, new, workspace)
    else:
        source = (workspace / path).read_text()
        assert old in source
        edits = {path: source.replace(old, new, 1)}
    args = {"model_arch": "mlp32"} if "architecture" in what else {}
    runner = FakeRunner()
    campaign, events = make(
        workspace, runner, proposer=ListProposer([CandidateSpec(what, "code", args, edits)]), max_candidates=1
    )
    thread = in_thread(campaign.start)
    rejected = wait_for(events, lambda e: e.type is EventType.CANDIDATE_REJECTED)
    campaign.command(Command(CommandType.STOP))
    thread.join(timeout=30)
    assert reason in rejected.data["reason"], rejected.data["reason"]
    assert Ledger(campaign.dir).latest_candidates()["c001"]["status"] == "rejected"
    assert not [r for r in campaign.ledger.rows() if r.artifacts == "runs/c001"]


def test_symlink_and_changed_protected_file_fail_the_guard(workspace):
    from engine.guard.validate import protected_hashes, validate
    from engine.store.workspace import CampaignRepo, changed_paths

    profile = load_profile(workspace, "fed_heart_disease")
    hashes = protected_hashes(workspace, profile)
    repo = CampaignRepo(workspace, TAG)
    repo.start()
    tree = repo.worktree_for("c001", repo.head())
    client = tree / "tasks/fed_heart_disease/client.py"
    client.unlink()
    client.symlink_to(tree / "tasks/fed_heart_disease/data.py")
    verdict = validate(tree, changed_paths(tree), profile, {}, hashes, {})
    assert verdict.reason == "surface: tasks/fed_heart_disease/client.py is a symlink"
    tree2 = repo.worktree_for("c002", repo.head())
    metric = tree2 / "tasks/shared/evaluation.py"
    metric.write_text(metric.read_text().replace("== labels", "!= labels"))
    verdict = validate(tree2, [], profile, {}, hashes, {})  # even an edit the surface check missed
    assert verdict.checks["integrity"] == (
        "protected file tasks/shared/evaluation.py changed (SHA-256 differs from the campaign start)"
    )


def _order(events, type_, cid):
    return next(e.seq for e in events if e.type is type_ and e.data.get("id") == cid)


def test_time_cap_ends_the_campaign(workspace):
    campaign, events = make(workspace, FakeRunner(delay=0.5), max_candidates=50, max_hours=0.003)
    campaign.start()
    assert events[-1].type is EventType.FINISHED and "time cap" in events[-1].data["reason"]
    assert len(campaign.ledger.rows()) < 50
    # Nothing is proposed once the cap has passed (what was running then is finished and ledgered).
    cap = campaign._started + 0.003 * 3600
    assert all(e.ts < cap + 1 for e in events if e.type is EventType.CANDIDATE_PROPOSED)


def test_resume_with_a_raised_cap_continues_without_duplicates(workspace):
    import json

    campaign, _ = make(workspace, max_candidates=3)
    campaign.start()
    again, events = make(workspace, max_candidates=5)
    again.resume()
    rows = again.ledger.rows()
    assert [r.artifacts for r in rows] == [f"runs/c00{i}" for i in range(1, 6)]
    assert len(Ledger(again.dir).candidates()) == 5
    assert json.loads((again.dir / "campaign.json").read_text())["options"]["max_candidates"] == 5
    assert events[0].type is EventType.CAMPAIGN_RESUMED
    assert events[0].seq > 1  # the journal's sequence continues across engine sessions


def test_a_crashed_baseline_stops_the_campaign_and_resume_runs_it_again(workspace):
    """A stale job.py (here: one that rejects the engine's flags) crashes every candidate: the
    campaign stops on the baseline's crash with the reason, instead of running 29 more."""
    broken = FakeRunner(crash_if=lambda args: True, crash_log="job.py: error: unrecognized arguments: --eval_subset\n")
    campaign, events = make(workspace, broken, max_candidates=6, parallel=2)
    campaign.start()
    rows = campaign.ledger.rows()
    assert rows[0].target == "baseline" and rows[0].status == "crash"
    assert len(rows) <= 3  # the baseline and what ran alongside it; nothing proposed after the crash
    stopped = events[-1]
    assert stopped.type is EventType.STOPPED and stopped.data["phase"] == "done"
    assert stopped.data["reason"].startswith("the baseline crashed: ")
    assert f"afr resume {TAG}" in stopped.data["reason"]
    assert not [r for r in rows if r.status == "literature"]
    # The human fixes the task and resumes: the baseline runs again first, then the campaign goes on.
    again, resumed = make(workspace, FakeRunner(), max_candidates=6)
    again.resume()
    proposed = [e.data["description"] for e in resumed if e.type is EventType.CANDIDATE_PROPOSED]
    assert proposed[0].startswith("baseline")
    after = again.ledger.rows()[len(rows):]
    assert after[0].target == "baseline" and after[0].status in ("keep", "discard") and after[0].score > 0


def test_literature_forced_before_the_baseline_waits_for_it(workspace):
    campaign, _ = make(workspace, max_candidates=3)
    campaign.literature.requested = True
    campaign.start()
    rows = campaign.ledger.rows()
    assert rows[0].target == "baseline" and rows[1].status == "literature"


def test_a_stalled_job_is_run_once_more_then_a_second_stall_is_a_crash(workspace):
    runner = FakeRunner(stalls={0, 2, 3})  # the baseline stalls once, c002 twice
    campaign, events = make(workspace, runner, max_candidates=2)
    campaign.start()
    assert [call["run_dir"].name for call in runner.calls] == ["c001", "c001-retry", "c002", "c002-retry"]
    rows = campaign.ledger.rows()
    assert rows[0].status == "keep"  # stalled once, then the retry ran
    assert rows[1].status == "crash"  # stalled twice
    assert any(
        "running it once more" in e.data.get("line", "") for e in events if e.type is EventType.CANDIDATE_LOG
    )


def test_nvflare_s_port_race_gets_three_more_tries(workspace):
    # Found within seconds (a silent stall takes minutes): the baseline loses it three times and
    # then runs; c002 loses it four times and is a crash.
    runner = FakeRunner(stalls={0, 1, 2, 4, 5, 6, 7}, stall_error=PORT_RACE_ERROR)
    campaign, _ = make(workspace, runner, max_candidates=2)
    campaign.start()
    tries = [f"{cid}{suffix}" for cid in ("c001", "c002") for suffix in ("", "-retry", "-retry2", "-retry3")]
    assert [call["run_dir"].name for call in runner.calls] == tries
    assert [row.status for row in campaign.ledger.rows()] == ["keep", "crash"]
