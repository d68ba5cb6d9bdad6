"""One real Fed-Heart-Disease smoke job inside the sandbox, scored by the trusted evaluator.

The job runs under bubblewrap with its worktree read-only, the raw UCI files hidden (it
must read the per-site views afr exported), the network limited to the sandbox's own
loopback and no provider key in its environment. The evaluator then scores the model the
server saved and must agree with NVFlare's own cross-site results.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from engine.guard import protected_hashes
from engine.profile import load_profile
from engine.run.databridge import export_site_data, pin_bridge
from engine.run.evaluator import evaluate, find_saved_model, reported_scores, score_mismatch
from engine.run.sandbox import SandboxSpec, detect_sandbox, wrap
from engine.runner import RUN_TOKEN_VAR, evaluation_environment, processes_of_run
from engine.store.gitsafe import run_git

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = "sk-afr-SENTINEL-" + uuid.uuid4().hex

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
    run_git(worktree, "init", "-q", "-b", "main")
    run_git(worktree, "add", "-A")
    run_git(worktree, "commit", "-q", "-m", "base")
    profile = load_profile(worktree, "fed_heart_disease")
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
    token = uuid.uuid4().hex
    raw = (worktree / profile.task_dir / "uci_data",)
    command = [
        sys.executable,
        "-u",
        str(worktree / profile.task_dir / profile.job),
        *profile.job_flags({}, smoke=True),
        "--workspace",
        str(run_dir / "nvflare"),
        "--result_json",
        str(run_dir / "job_result.json"),
    ]
    env = {"PYTHONUNBUFFERED": "1", RUN_TOKEN_VAR: token, "AFR_DATA_VIEW": str(tmp / "views"), **subset}
    spec = SandboxSpec(
        workdir=worktree, writable=(run_dir,), readonly=(worktree, tmp / "views"), hidden=raw, env=env
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", SENTINEL)  # what the engine's environment holds
        sandboxed = wrap(command, spec)
    done = subprocess.run(
        sandboxed.argv, env=sandboxed.env, cwd=sandboxed.cwd, capture_output=True, text=True, timeout=900
    )
    leftovers = processes_of_run(token)
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
        raw,
    )
    return {
        "done": done,
        "leftovers": leftovers,
        "result_dir": result_dir,
        "evaluation": evaluation,
        "data": data,
        "worktree": worktree,
        "argv": sandboxed.argv,
    }


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    return heart_job(tmp_path_factory.mktemp("sandboxed-heart"))


def test_the_job_succeeds_inside_the_sandbox_on_its_views(job):
    done = job["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "score:" in done.stdout
    # The raw files were hidden, so these sizes can only come from the exported views.
    for site, counts in job["data"].counts.items():
        assert f"{site} (" in done.stdout
        assert f"train={counts['train']} test={counts['view_eval']}" in done.stdout


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
    assert 0.0 < evaluation.score < 1.0


def test_a_forged_cross_site_file_is_a_mismatch(job):
    reported = {site: 0.99 for site in job["evaluation"].per_site}
    assert score_mismatch(job["evaluation"].per_site, reported).startswith("score mismatch: site-1")


def test_no_secret_no_process_and_no_write_left_behind(job):
    done = job["done"]
    assert SENTINEL not in done.stdout + done.stderr and SENTINEL not in " ".join(job["argv"])
    assert job["leftovers"] == []
    assert not [p for p in psutil.process_iter() if _has_token(p, job)]
    status = run_git(job["worktree"], "status", "--porcelain", "--untracked-files=all").stdout.decode()
    assert status == ""  # the read-only worktree kept every byte, no __pycache__ either


def _has_token(process: psutil.Process, job: dict) -> bool:
    try:
        return str(job["result_dir"]) in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
