"""The trusted launch on a remote executor's worker: afr's verified job and its step counter travel.

On the engine, the candidate's ``job.py`` only exports its job (sandboxed) and afr verifies
the exported JSON against the budget, exactly as for a local run (``engine/run/launch.py``).
What travels to the worker is the verified folder itself, never ``job.py``'s say: the worker
starts NVFlare's simulator on it, read-only in the run sandbox, with afr's step counter
(``engine/run/stepcount_site``) first on the job's ``PYTHONPATH`` and its FIFO drained on the
worker. The per-site/round counts come back with the result and are added to the engine's
step log, so the engine applies the same budget check and records the same fields as for a
local run.

The export names the engine's worktree by its absolute path (the client script, a data root):
the worker unpacks the same commit elsewhere, so that one prefix, and nothing else, is
rewritten to the worker's copy in the folder's JSON before the launch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.run.launch import Launch, simulator_command
from engine.run.stepcount import StepCounts, StepLog


@dataclass(frozen=True)
class ShippedLaunch:
    """A verified export as plain data: what a worker needs to launch it (no engine path is used)."""

    job: bytes  # tar of the verified job folder
    name: str  # the folder's name (NVFlare's job name): the simulator workspace is named after it
    n_clients: int
    engine_root: str  # the engine's worktree as the export names it; the worker's copy replaces it
    env: dict[str, str] = field(default_factory=dict)  # the lean knobs; PYTHONPATH is the worker's


def ship_launch(launch: Launch, root: Path, tar_bytes) -> ShippedLaunch:
    """``launch`` (verified on the engine) ready to travel; ``tar_bytes`` packs a folder."""
    env = {name: value for name, value in launch.env.items() if name != "PYTHONPATH"}
    return ShippedLaunch(
        tar_bytes(launch.job_dir), launch.job_dir.name, launch.n_clients, str(Path(root).resolve()), env
    )


def rewrite_root(job_dir: Path, engine_root: str, worker_root: Path) -> int:
    """The engine's worktree path -> the worker's in the job's JSON files; how many files changed."""
    worker = str(Path(worker_root).resolve())
    if engine_root == worker:
        return 0
    # The whole path only: followed by a separator, a quote or a space (never "/wt" inside "/wt2").
    pattern = re.compile(re.escape(engine_root) + r'(?=[/"\s]|$)')
    changed = 0
    for path in sorted(job_dir.rglob("*.json")):
        text = path.read_text()
        rewritten = pattern.sub(lambda _: worker, text)
        if rewritten != text:
            path.write_text(rewritten)
            changed += 1
    return changed


def land_launch(
    shipped: ShippedLaunch, job_parent: Path, code: Path, run_dir: Path, steps: StepLog | None, untar
) -> Launch:
    """The shipped launch unpacked under ``job_parent`` on the worker, counting steps into ``steps``."""
    job_dir = job_parent / shipped.name
    untar(shipped.job, job_dir)
    rewrite_root(job_dir, shipped.engine_root, code)
    workspace = run_dir / "nvflare" / shipped.name
    # The step counter's sitecustomize first, then the worktree the launched job imports from (as locally).
    paths = [steps.env["PYTHONPATH"]] if steps is not None else []
    pythonpath = os.pathsep.join([*paths, str(Path(code).resolve())])
    return Launch(
        job_dir=job_dir,
        workspace=workspace,
        command=simulator_command(job_dir, workspace, shipped.n_clients),
        env={**shipped.env, "PYTHONPATH": pythonpath},
        n_clients=shipped.n_clients,
    )


def counts_from(data: dict | None) -> StepCounts | None:
    """A worker's ``StepCounts.to_dict()`` back as counts (None: nothing was counted there)."""
    if data is None:
        return None
    return StepCounts({site: dict(rounds) for site, rounds in data["steps"].items()}, list(data["tampered"]))
