"""Export, verify, launch: the candidate's ``job.py`` describes a job, afr runs it (issue 12).

On the trusted path a run has two sandboxed steps instead of one:

1. **export**: the candidate's ``job.py`` runs with ``--export_dir`` (the protected
   ``tasks/shared/jobs.py`` then calls NVFlare's ``recipe.export``), in the run's sandbox
   with only the export folder writable and a short time limit;
2. the engine **verifies** the exported configuration as plain JSON against the budget it
   computed (``engine/run/jobconfig.py``): a departure refuses the candidate as a crash;
3. **launch**: the runner starts NVFlare's own simulator on the verified folder (mounted
   read-only) with the engine's client count, threads and lean knobs: the command
   ``SimEnv`` would have run, so the model is bit-identical and the result layout, phase
   clock and early return are unchanged. Nothing of ``job.py`` runs at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.run.export import run_export
from engine.run.jobconfig import BudgetError, expected_for, verify_export
from engine.run.runner import job_command
from engine.run.sandbox import SandboxSpec

EXPORT_TIMEOUT = 90.0  # seconds: importing torch and NVFlare and writing a few JSON files
EXPORT_DIR = "export"
EXPORT_LOG = "export.log"
SIMULATOR = "nvflare.private.fed.app.simulator.simulator"
POLL_VAR = "AFR_CLIENT_POLL_INTERVAL"  # tasks/shared/site_runtime.py (a test keeps them equal)
# tasks/shared/jobs.py LEAN: what the job itself set in its environment before SimEnv started
# the simulator (a test keeps these equal to the task code, which the engine never imports).
LEAN_THREADS_PER_SITE = 1
LEAN_CLIENT_POLL_INTERVAL = 0.02


class LaunchRefused(Exception):
    """The export failed or departs from the budget; the message is the one-line reason."""


@dataclass
class Launch:
    """A verified exported job and the simulator command that runs it."""

    job_dir: Path
    workspace: Path  # NVFlare's simulator workspace: <run_dir>/nvflare/<job name>, as SimEnv made it
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    n_clients: int = 0  # the simulator's sites (a remote executor rebuilds the command on its worker)

    def write_result(self, result_file: Path) -> None:
        """What ``jobs.run`` wrote after a normal exit: where the result is (no job.py ran to write it)."""
        tmp = result_file.with_name(result_file.name + ".tmp")
        tmp.write_text(json.dumps({"result_dir": str(self.workspace), "launched_by": "afr"}) + "\n")
        os.replace(tmp, result_file)

    def facts(self) -> dict:
        return {
            "export_seconds": round(self.export_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
        }


def launch_env(profile: Profile, worktree: Path, lean: bool) -> dict[str, str]:
    """The site processes' environment ``jobs.run`` used to set: the worktree importable, the lean knobs."""
    env = {"PYTHONPATH": str(Path(worktree).resolve())}
    threads = profile.run.threads_per_site
    threads = (LEAN_THREADS_PER_SITE if lean else 0) if threads is None else threads
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if lean:
        env[POLL_VAR] = repr(LEAN_CLIENT_POLL_INTERVAL)
    return env


def simulator_command(job_dir: Path, workspace: Path, n_clients: int) -> list[str]:
    """What NVFlare's ``FedJob.simulator_run`` runs for ``SimEnv(num_clients=n)``."""
    sites = ",".join(f"site-{i}" for i in range(1, n_clients + 1))
    count = str(n_clients)
    return [
        sys.executable,
        "-u",
        "-m",
        SIMULATOR,
        str(job_dir),
        "-w",
        str(workspace),
        "-c",
        sites,
        "-n",
        count,
        "-t",
        count,
    ]


def export_job(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    spec: SandboxSpec,
    sandbox: str | None,
    *,
    smoke: bool = False,
    seed: int | None = None,
    lean: bool = True,
    subset: str = "validation",
    timeout: float = EXPORT_TIMEOUT,
) -> Path:
    """Run the candidate's job.py in export mode in the sandbox; the export folder it wrote."""
    export_dir = run_dir / EXPORT_DIR
    shutil.rmtree(export_dir, ignore_errors=True)  # a retry reuses the run directory
    export_dir.mkdir(parents=True)
    command = job_command(root, profile, args, run_dir, "sim", smoke, seed, lean, subset) + [
        "--export_dir",
        str(export_dir),
    ]
    run = run_export(command, replace(spec, writable=(export_dir,)), sandbox, timeout)
    (run_dir / EXPORT_LOG).write_text("$ " + " ".join(command) + "\n" + run.output)
    if run.timed_out:
        raise LaunchRefused(
            f"budget: job.py did not export within {timeout:.0f} s (does it run the job itself?)"
        )
    if run.returncode != 0 and "unrecognized arguments: --export_dir" in run.output:
        raise LaunchRefused(
            "export failed: this workspace's tasks/shared/jobs.py predates export mode; "
            "copy the bundled one (afr init) before running trusted campaigns"
        )
    if run.returncode != 0:
        raise LaunchRefused(f"export failed (exit {run.returncode}): {run.last_line('Error')[:300]}")
    return export_dir


def prepare_launch(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    spec: SandboxSpec,
    sandbox: str | None,
    *,
    smoke: bool = False,
    seed: int | None = None,
    lean: bool = True,
    subset: str = "validation",
) -> Launch:
    """Export and verify the candidate's job; raises ``LaunchRefused`` with the reason."""
    root, run_dir = Path(root), Path(run_dir)
    expected = expected_for(profile, args, smoke, seed, root, subset)
    started = time.monotonic()
    export_dir = export_job(
        root, profile, args, run_dir, spec, sandbox, smoke=smoke, seed=seed, lean=lean, subset=subset
    )
    exported = time.monotonic()
    try:
        job_dir = verify_export(export_dir, expected, root)
    except BudgetError as error:
        raise LaunchRefused(str(error)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise LaunchRefused(f"budget: the exported job cannot be read ({error})") from None
    shutil.rmtree(run_dir / "nvflare", ignore_errors=True)  # the launch starts from an empty workspace
    workspace = run_dir / "nvflare" / job_dir.name
    return Launch(
        job_dir=job_dir,
        workspace=workspace,
        command=simulator_command(job_dir, workspace, expected.n_clients),
        env=launch_env(profile, root, lean),
        export_seconds=exported - started,
        verify_seconds=time.monotonic() - exported,
        n_clients=expected.n_clients,
    )
