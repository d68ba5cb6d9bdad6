"""The engine's side of a task's data: a pinned copy of the protected bridge and what it exports.

The protected data bridge (``tasks/<task>/data.py``, ``tasks/shared/holdout.py``...) is
code, and a worktree's copy is within a candidate's reach while its job runs. So at
campaign start afr extracts the protected files from the campaign's base commit into a
directory outside the workspace and checks them against the pinned SHA-256 hashes; every
export then runs that copy in a separate interpreter (``python -I``: no PYTHONPATH, no
working directory on ``sys.path``) and the engine itself only reads the ``.npy`` files it
writes, with pickling off.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.run.sandbox import allowed_name
from engine.store.gitsafe import run_git

CHILD = Path(__file__).with_name("bridge_child.py")


@dataclass(frozen=True)
class SiteData:
    """Where one run's exported data lies."""

    trusted_dir: Path  # inputs/<site>.npy (features) and labels/<site>.npy; outside every sandbox
    view_dir: Path | None  # <site>/*.npy: the job's per-site views, mounted read-only in its sandbox
    counts: dict[str, dict[str, int]]

    def inputs_dir(self) -> Path:
        return self.trusted_dir / "inputs"

    def labels(self, site: str) -> np.ndarray:
        return np.load(self.trusted_dir / "labels" / f"{site}.npy", allow_pickle=False)


def package_inits(paths: list[str]) -> list[str]:
    """The ``__init__.py`` of every package above ``paths`` (``tasks/``, ``tasks/shared/``...)."""
    inits = set()
    for path in paths:
        parts = Path(path).parts[:-1]
        for depth in range(1, len(parts) + 1):
            inits.add(Path(*parts[:depth], "__init__.py").as_posix())
    return sorted(inits - set(paths))


def pin_bridge(workspace: Path, commit: str, hashes: dict[str, str], dest: Path) -> Path:
    """Extract the protected files named in ``hashes`` from ``commit`` into ``dest`` and verify them.

    ``hashes`` is what the campaign pinned at its start (path -> SHA-256). Raises ValueError
    on any difference; ``dest`` then holds nothing usable.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for path in [*hashes, *package_inits(list(hashes))]:
        done = run_git(workspace, "cat-file", "blob", f"{commit}:{path}", check=False)
        if done.returncode != 0:
            if path in hashes:
                raise ValueError(f"protected file {path} is not in commit {commit[:12]}")
            continue  # a namespace package without __init__.py
        digest = hashlib.sha256(done.stdout).hexdigest()
        if path in hashes and digest != hashes[path]:
            raise ValueError(f"protected file {path} at {commit[:12]} differs from the pinned hash")
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(done.stdout)
    return dest


def export_site_data(
    bridge_root: Path,
    task_dir: str,
    sites: list[str],
    num_clients: int,
    trusted_dir: Path,
    scored_env: dict[str, str],
    view_dir: Path | None = None,
    view_env: dict[str, str] | None = None,
    timeout: float = 600.0,
) -> SiteData:
    """Run the pinned bridge once: scored split per site for the evaluator, views for the job.

    ``scored_env`` and ``view_env`` are holdout variables (``engine.run.runner.evaluation_environment``):
    the scored subset of a campaign run is "validation", of ``afr heldout`` "heldout"; the
    job's own view never carries held-out rows, so ``view_env`` stays "validation" (or "full"
    for a profile without ``[heldout]``).
    """
    spec = {
        "bridge_root": str(Path(bridge_root).resolve()),
        "task_package": task_dir.strip("/").replace("/", "."),
        "sites": list(sites),
        "num_clients": num_clients,
        "trusted_dir": str(trusted_dir),
        "scored_env": scored_env,
        "view_dir": str(view_dir) if view_dir else None,
        "view_env": view_env or scored_env,
    }
    env = {name: value for name, value in os.environ.items() if allowed_name(name) and name != "PYTHONPATH"}
    for name in ("HOME", "AFR_DATA_CACHE"):  # the LEAF generator caches under one of these
        if name in os.environ:
            env[name] = os.environ[name]
    env.pop("AFR_DATA_VIEW", None)
    done = subprocess.run(
        [sys.executable, "-I", str(CHILD), json.dumps(spec)],
        cwd=bridge_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C that lets the running candidate finish must not kill its export
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(f"trusted data export failed: {last}")
    return SiteData(Path(trusted_dir), Path(view_dir) if view_dir else None, json.loads(lines[-1]))
