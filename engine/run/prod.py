"""Running a candidate's job on a real NVFlare deployment (``--env prod``).

Four steps, the first in the sandbox and the rest in the engine:
1. **Export.** The candidate's ``job.py`` runs sandboxed (no network beyond loopback, no
   admin kit) with ``--env prod --export_dir``: it only writes the job folder.
2. **Check.** afr reads the exported configuration and refuses the job unless it carries
   what afr asked for: the evaluation subset component with afr's subset, fraction and
   seed, the final evaluation on exactly the scored sites, a client script inside the job,
   and protected files byte-identical to the pinned ones.
3. **Submit.** afr logs in with the admin startup kit (never visible to candidate code),
   submits the folder, follows the job's status, aborts it on timeout or interruption, and
   downloads its result (the server workspace: ``cross_site_val/cross_val_results.json``
   and ``app_server/FL_global_model.pt``) into the run directory.
4. **Score.** In a deployment the scored data live at the sites, where afr's evaluator
   cannot read them: the score of record is the sites' final evaluation of the final
   global model, recorded as ``scored_by: sites (prod)`` with the job id and status.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.run.deployment import Deployment, DeploymentError
from engine.run.export import run_export
from engine.run.jobbox import job_spec
from engine.run.jobcommand import (
    CRASH_SCORE,
    RunResult,
    final_score_json,
    job_command,
)
from engine.run.jobconfig import SUBSET_COMPONENT_ID, SUBSET_COMPONENT_PATH, expected_subset
from engine.store.redact import redact

SCORED_BY = "sites (prod)"
EXPORT_TIMEOUT = 300.0
POLL_SECONDS = 0.5  # a status query is one admin round trip; a job that ends waits for no more than this
COMPONENT_ID, COMPONENT_PATH = SUBSET_COMPONENT_ID, SUBSET_COMPONENT_PATH
CROSS_SITE_EVAL = "CrossSiteModelEval"


class JobRefused(RuntimeError):
    """The exported job is not what afr asked for; the message is one line."""


class JobAborted(RuntimeError):
    """The human aborted the run while its job ran on the deployment; the job was aborted there."""


_aborted: set[str] = set()  # run tokens the human aborted (Campaign.kill_running via cancel_run)
_aborted_lock = threading.Lock()


def abort(token: str) -> None:
    """Abort the run marked ``token`` on its deployment: its wait loop aborts the job there.
    Killing the engine's own processes is not enough: the job lives on the deployment's server."""
    with _aborted_lock:
        _aborted.add(token)


def _is_aborted(token: str | None) -> bool:
    with _aborted_lock:
        return token in _aborted


def scored_sites(profile: Profile) -> list[str]:
    clients = profile.budget.final_eval_clients
    return [f"site-{i}" for i in range(1, profile.budget.n_clients + 1)] if clients == "all" else list(clients)


def run_prod(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    deployment,
    *,
    subset: str = "validation",
    trusted=None,
    smoke: bool = False,
    timeout: float | None = None,
    seed: int | None = None,
    on_line=None,
    on_start=None,
) -> RunResult:
    """Export, check, submit and read back one job on ``deployment``; never raises for a failed job."""
    root, run_dir = Path(root), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "job.log"
    started = time.monotonic()
    tail: list[str] = []

    with open(log_path, "w", encoding="utf-8") as log:

        def say(line: str) -> None:
            line = redact(line.rstrip("\n"))
            log.write(line + "\n")
            log.flush()
            tail.append(line)
            del tail[:-40]
            if on_line is not None:
                on_line(line)

        def failed(status: str, error: str) -> RunResult:
            say(f"afr: {status}: {error}")
            runtime = time.monotonic() - started
            return RunResult(status, CRASH_SCORE, {}, runtime, str(log_path), None, None, list(tail), error)

        try:
            deployment = Deployment.of(deployment)
            deployment.check()
            profile = deployment.profile_for(profile)
        except DeploymentError as error:
            return failed("crash", str(error))
        sites = scored_sites(profile)
        export_dir = run_dir / "job"
        shutil.rmtree(export_dir, ignore_errors=True)
        command = job_command(root, profile, args, run_dir, "prod", smoke, seed, True, subset)
        command += ["--export_dir", str(export_dir)]
        sandbox = getattr(trusted, "sandbox", None)
        tokens: list[str] = []  # the run's token, which an abort names

        def started_(token: str) -> None:
            tokens.append(token)
            if on_start is not None:
                on_start(token)

        try:
            sandbox = _export(root, profile, command, run_dir, sandbox, say, started_)
            job_folder = _exported_folder(export_dir)
            check_job(job_folder, root, profile, subset, sites, getattr(trusted, "hashes", None))
        except (JobRefused, OSError, ValueError, subprocess.SubprocessError) as error:
            return replace_sandbox(failed("crash", f"prod job: {error}"), sandbox)
        exported_at = time.monotonic()
        say(f"afr: job checked; submitting to {deployment.startup_kit} as {deployment.username}")
        budget = (timeout or profile.run.timeout_seconds) - (time.monotonic() - started)
        try:
            aborted = lambda: bool(tokens) and _is_aborted(tokens[0])  # noqa: E731
            job_id, status, result_dir = submit_and_wait(job_folder, deployment, run_dir, budget, say, aborted)
        except TimeoutError as error:
            return replace_sandbox(failed("timeout", str(error)), sandbox)
        except JobAborted as error:
            return replace_sandbox(failed("crash", str(error)), sandbox)
        except Exception as error:  # the admin API raises its own types: one line, not a traceback
            return replace_sandbox(failed("crash", f"deployment: {str(error).splitlines()[0][:300]}"), sandbox)
        facts = {
            "scored_by": SCORED_BY,
            "job_id": job_id,
            "job_status": status,
            "startup_kit": str(deployment.startup_kit),
            "sites": sites,
            "subset": subset,
            # Where the time went: the sandboxed export and check, then login, the job and its download.
            "export_seconds": round(exported_at - started, 3),
            "deployment_seconds": round(time.monotonic() - exported_at, 3),
        }
        (run_dir / "prod.json").write_text(json.dumps(facts, indent=2) + "\n")
        if status != "FINISHED:COMPLETED" or result_dir is None:
            result = failed("crash", f"prod job {job_id} ended {status}")
            return replace_sandbox(RunResult(**{**result.to_dict(), "evaluator": facts}), sandbox)
        try:
            score, per_site = final_score_json(result_dir, profile.metric.name, sites)
        except (OSError, ValueError, KeyError, TypeError) as error:
            return replace_sandbox(failed("crash", str(error)), sandbox)
        facts.update(per_site=per_site, reported=per_site, score=score)
        (run_dir / "prod.json").write_text(json.dumps(facts, indent=2) + "\n")
        say(f"afr: scored by: {SCORED_BY}")
        say(f"afr: score: {score:.6f}")
    runtime = time.monotonic() - started
    return RunResult(
        "ok", score, per_site, runtime, str(log_path), str(result_dir), 0, list(tail), sandbox=sandbox, evaluator=facts
    )


def replace_sandbox(result: RunResult, sandbox: str | None) -> RunResult:
    result.sandbox = sandbox or "none"
    return result


def _export(root, profile, command, run_dir, sandbox, say, on_start) -> str:
    """Run the candidate's job.py in the sandbox to write the job folder; the sandbox used."""
    say("$ " + " ".join(command))
    spec = job_spec(root, run_dir, None, profile.surface.protected, {})
    run = run_export(command, spec, sandbox, EXPORT_TIMEOUT, on_start)
    for line in run.output.splitlines():
        say(line)
    if run.timed_out:
        raise ValueError(f"exporting the job took over {EXPORT_TIMEOUT:.0f} s")
    if run.returncode != 0:
        raise ValueError(f"export exited with code {run.returncode}: {run.last_line()[:300]}")
    return run.sandbox


def _exported_folder(export_dir: Path) -> Path:
    folders = [meta.parent for meta in export_dir.glob("*/meta.json")]
    if len(folders) != 1:
        raise JobRefused(f"expected one exported job folder under {export_dir}, found {len(folders)}")
    return folders[0]


def check_job(
    job_folder: Path,
    root: Path,
    profile: Profile,
    subset: str,
    sites: list[str],
    hashes: dict[str, str] | None = None,
) -> None:
    """Raise ``JobRefused`` unless the exported job scores what afr asked for (module docstring, step 2).

    ``hashes`` are the campaign's pinned protected hashes; without them the worktree's own
    protected files are the reference.
    """
    apps = [config.parents[1] for config in job_folder.glob("*/config/config_fed_client.json")]
    servers = list(job_folder.glob("*/config/config_fed_server.json"))
    if not apps or not servers:
        raise JobRefused("the exported job has no client or no server configuration")
    wanted = expected_subset(profile, subset)
    for app in apps:
        config = json.loads((app / "config" / "config_fed_client.json").read_text())
        found = [c for c in config.get("components", []) if c.get("id") == COMPONENT_ID]
        if len(found) != 1 or found[0].get("path") != COMPONENT_PATH or found[0].get("args") != wanted:
            raise JobRefused(f"{app.name}: the job does not carry afr's evaluation subset {wanted}")
        for entry in config.get("executors", []):
            script = entry.get("executor", {}).get("args", {}).get("task_script_path")
            if script is not None and (Path(script).is_absolute() or ".." in Path(script).parts):
                raise JobRefused(f"{app.name}: client script {script} is not a path inside the job")
            if script is not None and not (app / "custom" / script).is_file():
                raise JobRefused(f"{app.name}: client script {script} is not in the job's custom folder")
        _check_protected(app / "custom", root, profile, hashes)
    for server in servers:
        workflows = json.loads(server.read_text()).get("workflows", [])
        evaluations = [w for w in workflows if str(w.get("path", "")).endswith(CROSS_SITE_EVAL)]
        clients = [sorted(w.get("args", {}).get("participating_clients") or []) for w in evaluations]
        if clients != [sorted(sites)]:
            raise JobRefused(f"the job's final evaluation is not on exactly {', '.join(sites)}")


def _check_protected(custom: Path, root: Path, profile: Profile, hashes: dict[str, str] | None) -> None:
    """Every protected file the job ships is the pinned one; the holdout module must be shipped."""
    if hashes is None:
        hashes = {}
        for pattern in profile.surface.protected:
            for path in root.glob(pattern):
                if path.is_file():
                    hashes[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    if not (custom / "tasks" / "shared" / "holdout.py").is_file():
        raise JobRefused("the job does not ship tasks/shared/holdout.py (its evaluation subset)")
    for relative, digest in hashes.items():
        shipped = custom / relative
        if shipped.is_file() and hashlib.sha256(shipped.read_bytes()).hexdigest() != digest:
            raise JobRefused(f"the job ships a {relative} that differs from the protected one")


def submit_and_wait(
    job_folder: Path, deployment: Deployment, run_dir: Path, budget: float, say, aborted=lambda: False
) -> tuple[str, str, Path | None]:
    """Submit through the admin API, follow the job until it finishes, download its result.

    Returns the job id, its final status and the downloaded server workspace (None when
    nothing came back). A job still running after ``budget`` seconds, or when the engine
    is interrupted, or whose run the human aborted (``aborted()`` turns true), is aborted on
    the deployment.
    """
    from nvflare.fuel.flare_api.flare_api import new_secure_session  # only a prod run needs the admin API

    login = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # the admin API prints progress dots
        session = new_secure_session(
            deployment.username, str(Path(deployment.startup_kit).resolve()), timeout=deployment.login_timeout
        )
    say(f"afr: logged in to the deployment in {time.monotonic() - login:.1f} s")
    job_id, finished = None, False
    try:
        job_id = session.submit_job(str(job_folder))
        say(f"afr: submitted prod job {job_id}")
        deadline = time.monotonic() + max(budget, 1.0)
        status, last = "", ""
        while True:
            status = str(session.get_job_meta(job_id).get("status", ""))
            if status != last:
                say(f"afr: prod job {job_id}: {status}")
                last = status
            if status.startswith("FINISHED"):
                finished = True
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"prod job {job_id} still {status} after the run's time budget; aborted")
            if aborted():
                raise JobAborted(f"prod job {job_id} aborted by the human")
            time.sleep(POLL_SECONDS)
        downloaded = Path(session.download_job_result(job_id, destination=str(run_dir / "nvflare" / "prod")))
        workspace = downloaded / "workspace"
        return job_id, status, workspace if workspace.is_dir() else None
    finally:
        if job_id is not None and not finished:
            with contextlib.suppress(Exception):
                session.abort_job(job_id)
                say(f"afr: aborted prod job {job_id}")
        with contextlib.suppress(Exception):
            session.close()
