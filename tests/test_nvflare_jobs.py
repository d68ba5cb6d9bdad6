"""Real NVFlare jobs of both tasks at small budgets: SimEnv, PocEnv, and the runner's timeout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import psutil
import pytest

import engine.run.runner as runner_module
from engine.profile import load_profile
from engine.run.runner import evaluation_flags, run_job, run_job_retrying_stalls

pytestmark = pytest.mark.nvflare


def leftover_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (a run's own folder)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if marker in cmdline:
            found.append(cmdline[:160])
    return found


def assert_scored(result, sites: int):
    assert result.status == "ok", f"{result.error}\n" + "\n".join(result.log_tail[-20:])
    assert 0.0 < result.score <= 1.0
    assert len(result.per_site) == sites
    assert result.score == pytest.approx(sum(result.per_site.values()) / sites)


def test_heart_baseline_runs_directly_and_through_the_runner_with_one_score(root, tmp_path):
    profile = load_profile(root, "fed_heart_disease")
    result = run_job_retrying_stalls(root, profile, {}, tmp_path / "runner", smoke=True)
    assert_scored(result, sites=4)
    log = Path(result.log_path).read_text()
    assert f"score: {result.score:.6f}" in log
    assert "round 0: global_accuracy=" in log
    # The same job run by hand, as a researcher would, prints the same score: the initial
    # model and every client's data order follow from the seed alone.
    command = [
        sys.executable,
        str(root / profile.task_dir / "job.py"),
        *profile.job_flags(smoke=True),
        "--workspace",
        str(tmp_path / "direct"),
        *evaluation_flags(profile, "validation"),  # the runner's subset, in the job's own flags
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    printed = float(re.search(r"^score: ([0-9.]+)$", done.stdout, re.M).group(1))
    assert printed == pytest.approx(result.score, abs=1e-6)
    assert leftover_processes(str(tmp_path)) == []


def test_heart_scaffold_carries_control_variates_through_nvflare(root, tmp_path):
    profile = load_profile(root, "fed_heart_disease")
    two_rounds = profile.model_copy(update={"smoke": {"num_rounds": 2, "local_steps": 10}})
    result = run_job_retrying_stalls(root, two_rounds, {"aggregator": "scaffold"}, tmp_path / "run", smoke=True)
    assert_scored(result, sites=4)
    norms = {
        int(round_): float(norm)
        for round_, norm in re.findall(
            r"round (\d+): .* scaffold_c_norm=([0-9.]+)", Path(result.log_path).read_text()
        )
    }
    # Round 0 starts from zero controls; the server's aggregated control reaches round 1.
    assert norms[0] == 0.0
    assert norms[1] > 0.0


def test_leaf_synthetic_fedadam_on_four_clients(root, tmp_path):
    profile = load_profile(root, "leaf_synthetic")
    four = profile.model_copy(update={"budget": profile.budget.model_copy(update={"n_clients": 4})})
    result = run_job_retrying_stalls(root, four, {"aggregator": "fedadam", "server_lr": 0.03}, tmp_path / "run", smoke=True)
    assert_scored(result, sites=4)
    # A lean run returns on NVFlare's complete result, before the job writes its own summary.
    assert result.early_return and Path(result.result_dir, "server").is_dir()


def test_heart_on_poc_env_with_real_processes(root, tmp_path):
    profile = load_profile(root, "fed_heart_disease")
    result = run_job_retrying_stalls(root, profile, {}, tmp_path / "run", env="poc", smoke=True, timeout=400)
    assert_scored(result, sites=4)
    run_dir = Path(result.log_path).parent  # tmp_path/run, or its retry after an NVFlare stall
    summary = json.loads((run_dir / "job_result.json").read_text())
    assert summary["env"] == "poc"
    # The result was copied out before NVFlare removed its POC workspace.
    assert (run_dir / "nvflare" / "poc_results").is_dir()
    assert not (run_dir / "nvflare" / "poc").exists() or not any((run_dir / "nvflare" / "poc").iterdir())
    assert leftover_processes(str(tmp_path)) == []


def test_timeout_kills_the_whole_job(root, tmp_path):
    profile = load_profile(root, "fed_heart_disease")
    result = run_job(root, profile, {}, tmp_path, timeout=12)
    assert result.status == "timeout"
    assert result.score == 0.0 and "timed out after 12 s" in result.error
    assert result.runtime_seconds < 12 + 20
    assert leftover_processes(str(tmp_path)) == []


def run_heart_job_script(root, tmp_path, source: str, **options):
    """Heart's task with ``source`` as its job.py, run (untrusted path) by the runner."""
    import shutil

    workspace = tmp_path / "ws"
    shutil.copytree(root / "tasks", workspace / "tasks")
    (workspace / "tasks" / "fed_heart_disease" / "job.py").write_text(source)
    return run_job(workspace, load_profile(root, "fed_heart_disease"), {}, tmp_path / "run", **options)


def test_a_silent_job_is_stopped_as_stalled(root, tmp_path):
    """A job that stops printing (NVFlare waiting for a worker that never connected) is cut short."""
    job = (
        "import subprocess, sys, time\nprint('starting', flush=True)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\ntime.sleep(120)\n"
    )
    result = run_heart_job_script(root, tmp_path, job, stall_seconds=3)
    assert result.status == "stalled" and result.error == "no output for 3 s: the NVFlare job stalled"
    assert result.runtime_seconds < 30
    assert leftover_processes("time.sleep(120)") == []


class SlowDeque(deque):
    """A deque whose readers are slow: whoever iterates it while the job's output is appended
    meets the append, as a loaded machine's scheduler can arrange."""

    def __iter__(self):
        for item in super().__iter__():
            time.sleep(0.002)
            yield item


def test_a_chatty_job_never_trips_the_runner_s_watch(root, tmp_path, monkeypatch):
    """The runner watches the job while another thread reads its output: iterating the output's
    tail during the run once crashed a healthy job with "deque mutated during iteration"."""
    monkeypatch.setattr(runner_module, "deque", SlowDeque)
    job = "import time\nend = time.time() + 4\nwhile time.time() < end:\n    print('x' * 60, flush=True)\n"
    result = run_heart_job_script(root, tmp_path, job, stall_seconds=60)
    assert result.status == "crash" and result.error == "job exited with code 0"
    assert len(result.log_tail) == 40 and result.log_tail[-1] == "x" * 60


def test_nvflare_s_port_race_is_a_stall_at_once(root, tmp_path):
    """A simulator worker whose port another worker took: NVFlare would wait minutes on a client
    that never connects; the runner stops the job at once and the campaign runs it once more."""
    job = (
        "import time\nprint('ERROR - Execute exception: OSError: [Errno 98] Address already in use', flush=True)\n"
        "while True:\n    print('waiting for the child process', flush=True)\n    time.sleep(0.5)\n"
    )
    result = run_heart_job_script(root, tmp_path, job, stall_seconds=60)
    assert result.status == "stalled" and "NVFlare's port race" in result.error
    assert result.runtime_seconds < 20
    assert leftover_processes(str(tmp_path / "run")) == []
