"""Running one candidate's NVFlare job as a subprocess and reading its score.

The job runs in its own session with its own NVFlare workspace and log file; on timeout
every process of the run gets SIGTERM, a grace period, then SIGKILL, so no simulator
server or client is left behind. The score is read from NVFlare's own ``cross_val_results.json``,
not from what the job prints.

A lean run (the default) returns as soon as ``cross_val_results.json`` holds the final model's
metric for every scored client: NVFlare writes that file once, at the end of the run, and the
simulator then takes several seconds more to shut down; the runner stops it instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.run.jobcommand import (  # noqa: F401  (re-exported: the runner's public names)
    CRASH_SCORE,
    EVALUATION_SUBSETS,
    RUN_TOKEN_VAR,
    RunResult,
    evaluation_environment,
    evaluation_flags,
    final_score_json,
    job_command,
)
from engine.run.phases import PhaseClock
from engine.run.processes import GRACE_SECONDS, processes_of_run, stop_run  # noqa: F401  (re-exported)
from engine.run.retry import PORT_RACE_ERROR, run_retrying_stalls
from engine.store.redact import redact

EARLY_STOP_GRACE_SECONDS = 1.0  # the score is already complete: nothing of the run is still needed
# NVFlare's simulator picks each client worker's port with get_open_ports() and binds it later;
# two workers can draw the same port, and the loser's client then waits out long timeouts.
PORT_RACE = "OSError: [Errno 98] Address already in use"
RESULT_GLOB = "*/server/*/cross_site_val/cross_val_results.json"  # under the run's NVFlare workspace


def _pump(
    stream, log, tail: deque, on_line, heard: list[float], clock: PhaseClock, port_race: threading.Event
) -> None:
    # The runner's thread reads only what this thread flags: iterating ``tail`` there while this
    # thread appends raised "deque mutated during iteration" and crashed a healthy job.
    for line in stream:
        heard[0] = time.monotonic()
        if PORT_RACE in line:
            port_race.set()
        line = redact(line)  # candidate code may print a key: job.log, the journal and the cockpit never see it
        log.write(line)
        line = line.rstrip("\n")
        derived = clock.feed(line, heard[0])
        for extra in derived:
            log.write(extra + "\n")
        log.flush()
        for shown in [line, *derived]:
            tail.append(shown)
            if on_line is not None:
                on_line(shown)


@dataclass
class CompleteResult:
    result_dir: Path
    results_file: Path
    content: bytes  # the file as it was when it first scored every client


def complete_result(
    root: Path, profile: Profile, run_dir: Path, since: float
) -> CompleteResult | None:
    """NVFlare's result once its ``cross_val_results.json`` scores every scored client, else None.

    The file must be newer than ``since`` (a retry reuses the run directory) and parse
    completely: NVFlare writes it in one go, so a half-written file fails to parse.
    """
    clients = None if profile.budget.final_eval_clients == "all" else list(profile.budget.final_eval_clients)
    for found in (run_dir / "nvflare").glob(RESULT_GLOB):
        try:
            if found.stat().st_mtime < since:
                continue
            content = found.read_bytes()
            result_dir = found.parents[3]
            final_score_json(result_dir, profile.metric.name, clients)  # plain JSON: no worktree code
            if found.read_bytes() != content:
                continue  # rewritten meanwhile: look again on the next tick
        except (OSError, ValueError, KeyError):
            continue
        return CompleteResult(result_dir, found, content)
    return None


def keep_complete(result: CompleteResult) -> bool:
    """Put back the complete file if a writer stopped by the runner left it truncated.

    NVFlare 2.9's recipes register two ``ValidationJsonGenerator``s: both write the same
    content at the end of the run, one after the other, and the second may be stopped
    mid-write. True when the file had to be restored.
    """
    try:
        if result.results_file.read_bytes() == result.content:
            return False
    except OSError:
        pass
    partial = result.results_file.with_name(result.results_file.name + ".afr-tmp")
    partial.write_bytes(result.content)
    os.replace(partial, result.results_file)
    return True


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
    sandbox_spec=None,
    sandbox: str | None = None,
    trusted=None,
    lean: bool = True,
    launch=None,
    deployment=None,
    token: str | None = None,
) -> RunResult:
    """Run the profile's job with ``args`` in ``run_dir``; never raises for a failed job.

    ``lean`` runs the job with its single-machine NVFlare knobs and returns on the complete
    result (simulation only); ``lean=False`` runs NVFlare's defaults and waits for the job to exit.

    ``subset`` is the part of each client's evaluation split it is scored on: "validation"
    (what campaigns and repeats use) or "heldout" when the profile declares ``[heldout]``,
    else the whole split. The protected data bridge reads it from the environment.
    ``token`` marks the job's processes (default: a fresh one); a remote executor chooses it.
    ``sandbox_spec`` (an ``engine.run.sandbox.SandboxSpec``) runs the job in the sandbox
    with only the run's own variables (``engine.run.jobbox.job_spec`` builds one), under
    ``sandbox`` ("bwrap", or "none": the allow-listed environment only; default: what works).
    ``trusted`` (an ``engine.run.trusted.TrustedScoring``) takes the trusted path: the job
    sandboxed and the score of record computed by afr's evaluator (``TrustedScoring.run``).
    ``launch`` (an ``engine.run.launch.Launch``, set by the trusted path) runs the exported and
    verified job with NVFlare's own simulator instead of the candidate's ``job.py``.
    ``env="prod"`` runs the job on the real NVFlare deployment ``deployment`` names
    (an ``engine.run.deployment.Deployment`` or its dict): see ``engine.run.prod``.
    """
    if env == "prod":  # a real deployment: engine.run.prod exports, checks, submits and reads back the job
        from engine.run.prod import run_prod

        options = {"smoke": smoke, "timeout": timeout, "seed": seed, "on_line": on_line, "on_start": on_start}
        return run_prod(root, profile, args, run_dir, deployment, subset=subset, trusted=trusted, **options)
    if trusted is not None:
        options = {"env": env, "smoke": smoke, "timeout": timeout, "gpu": gpu, "seed": seed}
        options.update(on_line=on_line, on_start=on_start, stall_seconds=stall_seconds, subset=subset, lean=lean)
        if token is not None:
            options["token"] = token
        return trusted.run(run_job, root, profile, args, run_dir, **options)  # engine.run.trusted
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "job.log"
    command = (
        job_command(root, profile, args, run_dir, env, smoke, seed, lean, subset) if launch is None else launch.command
    )
    token = token or uuid.uuid4().hex
    run_vars = {"PYTHONUNBUFFERED": "1", RUN_TOKEN_VAR: token}  # the subset travels in the job's configuration
    if launch is not None:
        run_vars.update(launch.env)  # what job.py used to set for the simulator (engine/run/launch.py)
    if gpu is not None:
        run_vars["CUDA_VISIBLE_DEVICES"] = gpu
    child_env = dict(os.environ, **run_vars)
    timeout = timeout or profile.run.timeout_seconds
    stall_seconds = profile.run.stall_seconds if stall_seconds is None else stall_seconds
    tail: deque[str] = deque(maxlen=40)
    started = time.monotonic()
    started_wall = time.time() - 1.0  # file times are coarser than the clock
    watch_result = env == "sim"  # a POC job copies its result out before it exits: wait for it
    rounds = profile.smoke.get("num_rounds", profile.budget.num_rounds) if smoke else profile.budget.num_rounds
    clock = PhaseClock(started, int(rounds), profile.metric.name)
    timed_out = False
    cwd = root
    complete: CompleteResult | None = None
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        if sandbox_spec is not None:
            command, child_env, cwd = _sandboxed(command, run_vars, sandbox_spec, sandbox)
        process = subprocess.Popen(
            command,
            cwd=cwd,
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
        race = threading.Event()  # set by the pump on NVFlare's port race
        pump = threading.Thread(
            target=_pump, args=(process.stdout, log, tail, on_line, heard, clock, race), daemon=True
        )
        pump.start()
        stalled = port_race = False
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout:
                timed_out = True
                break
            if stall_seconds and now - heard[0] > stall_seconds:
                stalled = True
                break
            if race.is_set():
                port_race = True  # a client never connects: NVFlare waits minutes before it recovers
                break
            if watch_result and clock.result_at is None:
                complete = complete_result(root, profile, run_dir, started_wall)
                if complete is not None:
                    clock.result_complete(time.monotonic())
                    if lean:
                        break
            time.sleep(0.2)
        if clock.result_at is None and process.returncode == 0:
            clock.result_complete(time.monotonic())
        early_return = lean and complete is not None
        # On timeout, on an early return, and after a normal exit for any worker left behind.
        stop_run(process, token, EARLY_STOP_GRACE_SECONDS if early_return else GRACE_SECONDS)
        pump.join(timeout=5)
        if early_return:
            restored = keep_complete(complete)
            log.write("afr: result complete; the runner stopped the simulator\n")
            if restored:
                log.write("afr: restored cross_val_results.json as first written complete\n")
    runtime = time.monotonic() - started
    returncode = process.returncode
    phases = asdict(clock.phases())

    def failed(status: str, error: str) -> RunResult:
        return RunResult(
            status, CRASH_SCORE, {}, runtime, str(log_path), None, returncode, list(tail), error, **phases
        )

    if stalled:
        return failed("stalled", f"no output for {stall_seconds:.0f} s: the NVFlare job stalled")
    if port_race:  # a stall found at once: engine/run/retry.py runs it again
        return failed("stalled", PORT_RACE_ERROR)
    if timed_out:
        return failed("timeout", f"timed out after {timeout:.0f} s")
    result_file = run_dir / "job_result.json"
    if launch is not None and not early_return and returncode == 0:
        launch.write_result(result_file)
    if not early_return and (returncode != 0 or not result_file.is_file()):
        return failed(
            "crash",
            next((line for line in reversed(list(tail)) if "Error" in line), f"job exited with code {returncode}"),
        )
    result_dir = complete.result_dir if early_return else Path(json.loads(result_file.read_text())["result_dir"])
    result = _score(root, profile, result_dir, runtime, log_path, returncode, list(tail))
    for name, value in phases.items():
        setattr(result, name, value)
    result.early_return = early_return
    result.shutdown_seconds = None if clock.result_at is None else round(started + runtime - clock.result_at, 3)
    if result.status == "ok":
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"afr: score: {result.score:.6f}\n")
    return result


def run_job_retrying_stalls(
    root: Path, profile: Profile, args: dict[str, Scalar], run_dir: Path, on_retry=None, **options
) -> RunResult:
    """``run_job`` under the campaign's stall policy (``engine.run.retry``): a job NVFlare left
    silent runs again in ``<run_dir>-retry``, after ``on_retry(stalled_result)``. For one-off
    runs outside a campaign (a task check)."""

    def run(where: Path) -> RunResult:
        return run_job(root, profile, args, where, **options)

    return run_retrying_stalls(run, run_dir, on_retry)[0]


def _sandboxed(
    command: list[str], run_vars: dict[str, str], spec, sandbox: str | None = None
) -> tuple[list[str], dict[str, str], Path]:
    """``command`` wrapped by the sandbox, with the runner's own variables added to the spec's."""
    from engine.run.sandbox import wrap  # imported here: runner.py is being moved (issue 11)

    boxed = wrap(command, replace(spec, env={**spec.env, **run_vars}), sandbox)
    return boxed.argv, boxed.env, Path(boxed.cwd)




def _score(root, profile, result_dir: Path, runtime, log_path, returncode, tail) -> RunResult:
    """The job's own score of record (plain JSON; see ``final_score_json``)."""
    clients = None if profile.budget.final_eval_clients == "all" else list(profile.budget.final_eval_clients)
    try:
        score, per_site = final_score_json(result_dir, profile.metric.name, clients)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return RunResult("crash", CRASH_SCORE, {}, runtime, str(log_path), None, returncode, tail, str(error))
    return RunResult("ok", score, per_site, runtime, str(log_path), str(result_dir), returncode, tail)
