"""Running one candidate's NVFlare job as a subprocess and reading its score.

The job runs in its own session with its own NVFlare workspace and log file; on timeout
every process of the run gets SIGTERM, a grace period, then SIGKILL, so no simulator
server or client is left behind. The score is read from NVFlare's own ``cross_val_results.json``,
not from what the job prints.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from engine.profile import Profile, Scalar

GRACE_SECONDS = 10.0
RUN_TOKEN_VAR = "AFR_RUN_TOKEN"
CRASH_SCORE = 0.0
EVALUATION_SUBSETS = ("validation", "heldout", "full")


@dataclass
class RunResult:
    status: str  # "ok", "crash", "timeout" or "stalled" (no output for the profile's stall_seconds)
    score: float
    per_site: dict[str, float]
    runtime_seconds: float
    log_path: str
    result_dir: str | None
    returncode: int | None
    log_tail: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def job_command(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    env: str,
    smoke: bool,
    seed: int | None = None,
) -> list[str]:
    job = root / profile.task_dir / profile.job
    return [
        sys.executable,
        "-u",
        str(job),
        *profile.job_flags(args, smoke=smoke, seed=seed),
        "--metric",  # the profile's metric and direction, so the job's NVFlare key metric agrees
        profile.metric.name,
        "--metric_direction",
        profile.metric.direction,
        "--env",
        env,
        "--workspace",
        str(run_dir / "nvflare"),
        "--result_json",
        str(run_dir / "job_result.json"),
    ]


def evaluation_environment(profile: Profile, subset: str) -> dict[str, str]:
    """The variables telling the task's protected data bridge which evaluation subset to score on.

    The names are the contract with the workspace's ``tasks/shared/holdout.py`` (a test
    keeps them equal); the engine does not import task code, which an installed afr lacks.
    """
    if subset not in EVALUATION_SUBSETS:
        raise ValueError(f"evaluation subset {subset!r} is not one of {', '.join(EVALUATION_SUBSETS)}")
    if profile.heldout is None and subset == "heldout":
        raise ValueError(f"profile {profile.name} declares no [heldout] subset")
    if profile.heldout is None or subset == "full":
        return {"AFR_EVAL_SUBSET": "full"}
    return {
        "AFR_EVAL_SUBSET": subset,
        "AFR_HELDOUT_FRACTION": repr(float(profile.heldout.fraction)),
        "AFR_HELDOUT_SEED": str(profile.heldout.seed),
    }


def processes_of_run(token: str) -> list[psutil.Process]:
    """Every live process started for the run marked ``token``.

    NVFlare's simulator puts its server and workers in process groups of their own, and
    they outlive a killed parent, so the runner marks the job's environment and finds the
    whole family by that mark rather than by process group or parentage.
    """
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(RUN_TOKEN_VAR) == token:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def stop_run(process: subprocess.Popen, token: str, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every process of the run, wait ``grace`` seconds, then SIGKILL the rest."""
    family = processes_of_run(token)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    process.poll()


def _pump(stream, log, tail: deque, on_line, heard: list[float]) -> None:
    for line in stream:
        heard[0] = time.monotonic()
        log.write(line)
        log.flush()
        line = line.rstrip("\n")
        tail.append(line)
        if on_line is not None:
            on_line(line)


def run_job(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    *,
    env: str = "sim",
    smoke: bool = False,
    timeout: float | None = None,
    gpu: str | None = None,
    seed: int | None = None,
    on_line=None,
    on_start=None,
    stall_seconds: float | None = None,
    subset: str = "validation",
) -> RunResult:
    """Run the profile's job with ``args`` in ``run_dir``; never raises for a failed job.

    ``subset`` is the part of each client's evaluation split it is scored on: "validation"
    (what campaigns and repeats use) or "heldout" when the profile declares ``[heldout]``,
    else the whole split. The protected data bridge reads it from the environment.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "job.log"
    command = job_command(root, profile, args, run_dir, env, smoke, seed)
    token = uuid.uuid4().hex
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", **{RUN_TOKEN_VAR: token})
    child_env.update(evaluation_environment(profile, subset))
    if gpu is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = gpu
    timeout = timeout or profile.run.timeout_seconds
    stall_seconds = profile.run.stall_seconds if stall_seconds is None else stall_seconds
    tail: deque[str] = deque(maxlen=40)
    started = time.monotonic()
    timed_out = False
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(
            command,
            cwd=root,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        if on_start is not None:
            on_start(token)  # lets a resumed engine find and kill this run's processes
        heard = [time.monotonic()]
        pump = threading.Thread(target=_pump, args=(process.stdout, log, tail, on_line, heard), daemon=True)
        pump.start()
        stalled = False
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout:
                timed_out = True
                break
            if stall_seconds and now - heard[0] > stall_seconds:
                stalled = True
                break
            time.sleep(0.2)
        stop_run(process, token)  # on timeout, and after a normal exit for any worker left behind
        pump.join(timeout=5)
    runtime = time.monotonic() - started
    returncode = process.returncode

    def failed(status: str, error: str) -> RunResult:
        return RunResult(status, CRASH_SCORE, {}, runtime, str(log_path), None, returncode, list(tail), error)

    if stalled:
        return failed("stalled", f"no output for {stall_seconds:.0f} s: the NVFlare job stalled")
    if timed_out:
        return failed("timeout", f"timed out after {timeout:.0f} s")
    result_file = run_dir / "job_result.json"
    if returncode != 0 or not result_file.is_file():
        return failed(
            "crash",
            next((line for line in reversed(tail) if "Error" in line), f"job exited with code {returncode}"),
        )
    return _score(root, profile, result_file, runtime, log_path, returncode, list(tail))


def load_scoring(root: Path):
    """The workspace's protected ``tasks/shared/scoring.py``, loaded by path (it imports nothing of ours)."""
    path = Path(root) / "tasks" / "shared" / "scoring.py"
    spec = importlib.util.spec_from_file_location(f"afr_scoring_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _score(root, profile, result_file, runtime, log_path, returncode, tail) -> RunResult:
    """Re-read the score from NVFlare's results with the workspace's protected scoring code."""
    final_score = load_scoring(root).final_score
    reported = json.loads(result_file.read_text())
    clients = None if profile.budget.final_eval_clients == "all" else list(profile.budget.final_eval_clients)
    try:
        score, per_site = final_score(reported["result_dir"], profile.metric.name, clients)
    except (OSError, ValueError, KeyError) as error:
        return RunResult("crash", CRASH_SCORE, {}, runtime, str(log_path), None, returncode, tail, str(error))
    return RunResult("ok", score, per_site, runtime, str(log_path), reported["result_dir"], returncode, tail)
