"""One real Fed-Heart-Disease smoke job inside the sandbox, scored by the trusted evaluator.

The job runs under bubblewrap with its worktree read-only, the raw UCI files hidden (it
must read the per-site views afr exported), the network limited to the sandbox's own
loopback and no provider key in its environment. The evaluator then scores the model the
server saved and must agree with NVFlare's own cross-site results.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psutil
import pytest

from engine.guard.validate import protected_hashes
from engine.profile import load_profile
from engine.run.databridge import export_site_data, pin_bridge
from engine.run.evaluator import evaluate, find_saved_model, reported_scores, score_mismatch
from engine.run.jobbox import job_spec
from engine.run.runner import evaluation_environment, processes_of_run, run_job
from engine.run.sandbox import detect_sandbox
from engine.store.gitsafe import run_git

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = "sk-afr-SENTINEL-" + uuid.uuid4().hex

# A hostile edit of the (editable) client: at import, in every client process, it lists
# its environment and tries to read the raw data and to write into its worktree.
PROBE = """
import json as _json
import os as _os

print("AFR-PROBE env", _json.dumps(sorted(_os.environ)))
for _path in ("tasks/fed_heart_disease/uci_data/processed.cleveland.data", _os.path.expanduser("~/.bashrc")):
    try:
        open(_path).read()
        print("AFR-PROBE read", _path)
    except OSError:
        print("AFR-PROBE denied", _path)
try:
    open("tasks/shared/scoring.py", "a").write("# rewritten during the run")
    print("AFR-PROBE wrote scoring.py")
except OSError:
    print("AFR-PROBE denied write")
"""

pytestmark = [
    pytest.mark.nvflare,
    pytest.mark.skipif(detect_sandbox() != "bwrap", reason="bubblewrap is not usable here"),
]


def heart_job(tmp: Path) -> dict:
    """Everything the runner would do for one sandboxed smoke candidate, step by step."""
    worktree = tmp / "worktree"
    worktree.mkdir()
    shutil.copytree(ROOT / "tasks", worktree / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "profiles", worktree / "profiles")
    shutil.copy(ROOT / "program.md", worktree / "program.md")  # a profile's context must exist
    run_git(worktree, "init", "-q", "-b", "main")
    run_git(worktree, "add", "-A")
    run_git(worktree, "commit", "-q", "-m", "base")
    profile = load_profile(worktree, "fed_heart_disease")
    client = worktree / profile.task_dir / "client.py"
    client.write_text(client.read_text().replace("\n\ndef parse_args", PROBE + "\n\ndef parse_args", 1))
    sites = list(profile.budget.final_eval_clients)
    subset = evaluation_environment(profile, "validation")
    bridge = pin_bridge(worktree, "HEAD", protected_hashes(worktree, profile), tmp / "trusted" / "bridge")
    data = export_site_data(
        bridge,
        profile.task_dir,
        sites,
        profile.budget.n_clients,
        tmp / "trusted" / "data",
        subset,
        tmp / "views",
        subset,
    )
    run_dir = tmp / "run"
    run_dir.mkdir()
    tokens: list[str] = []
    spec = job_spec(worktree, run_dir, tmp / "views", profile.surface.protected, {})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", SENTINEL)  # what the engine's environment holds
        for _ in range(2):  # a stalled NVFlare job runs once more, as the campaign does
            result = run_job(
                worktree, profile, {}, run_dir, smoke=True, on_start=tokens.append, sandbox_spec=spec
            )
            if result.status != "stalled":
                break
    leftovers = processes_of_run(tokens[-1])
    result_dir = run_dir / "nvflare"
    evaluation = evaluate(
        worktree,
        "tasks.fed_heart_disease.model",
        "logreg",
        result_dir,
        data,
        sites,
        "accuracy",
        profile.budget.max_model_params,
        spec.hidden,
    )
    return {
        "result": result,
        "log": Path(result.log_path).read_text(),
        "leftovers": leftovers,
        "result_dir": result_dir,
        "evaluation": evaluation,
        "data": data,
        "worktree": worktree,
        "spec": spec,
    }


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    return heart_job(tmp_path_factory.mktemp("sandboxed-heart"))


def test_the_job_succeeds_inside_the_sandbox_on_its_views(job):
    result, log = job["result"], job["log"]
    assert result.status == "ok", result.error + "\n" + log[-3000:]
    assert job["spec"].hidden == (job["worktree"] / "tasks" / "fed_heart_disease" / "uci_data",)
    # The raw files were hidden, so these sizes can only come from the exported views.
    for site, counts in job["data"].counts.items():
        assert f"{site} (" in log
        assert f"train={counts['train']} test={counts['view_eval']}" in log


def test_the_server_saved_its_final_model(job):
    assert find_saved_model(job["result_dir"]).stat().st_size > 0


def test_the_evaluator_agrees_with_nvflares_cross_site_results(job):
    evaluation = job["evaluation"]
    assert evaluation.ok, evaluation.error
    assert evaluation.sandbox == "bwrap"
    assert evaluation.counts["parameters"] == 14 and evaluation.counts["total"] == 14
    reported = reported_scores(job["result_dir"])
    assert sorted(reported) == sorted(evaluation.per_site)
    assert score_mismatch(evaluation.per_site, reported) is None
    assert score_mismatch(evaluation.per_site, job["result"].per_site) is None
    assert 0.0 < evaluation.score < 1.0


def test_a_forged_cross_site_file_is_a_mismatch(job):
    reported = {site: 0.99 for site in job["evaluation"].per_site}
    assert score_mismatch(job["evaluation"].per_site, reported).startswith("score mismatch: site-1")


def test_candidate_code_saw_no_secret_no_raw_data_and_could_not_write(job):
    log = job["log"]
    assert "AFR-PROBE env" in log
    assert SENTINEL not in log and "OPENAI_API_KEY" not in log
    assert "AFR-PROBE read" not in log and "AFR-PROBE wrote" not in log
    assert "AFR-PROBE denied write" in log


def test_no_process_and_no_write_left_behind(job):
    assert job["leftovers"] == []
    assert not [p for p in psutil.process_iter() if _has_token(p, job)]
    status = run_git(job["worktree"], "status", "--porcelain", "--untracked-files=all").stdout.decode()
    assert status.split() == [
        "M",
        "tasks/fed_heart_disease/client.py",
    ]  # the probe's edit alone, no __pycache__


def _has_token(process: psutil.Process, job: dict) -> bool:
    try:
        return str(job["result_dir"]) in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
