"""The sandbox of one candidate's NVFlare job: what the runner hands ``sandbox.wrap``.

The worktree is mounted read-only (a job writes only to its run directory, so it cannot
rewrite its own protected files mid-run), the raw data files among the protected ones are
hidden, and the per-site views afr exported are the only data it can read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.run.sandbox import SandboxSpec

VIEW_VAR = "AFR_DATA_VIEW"  # read by the protected tasks/shared/views.py


def raw_data_paths(worktree: Path, protected_patterns: Iterable[str]) -> tuple[Path, ...]:
    """Protected paths that are data rather than code: folders for ``dir/*`` patterns, else files."""
    found: set[Path] = set()
    for pattern in protected_patterns:
        if pattern.endswith("/*"):
            folder = worktree / pattern[:-2]
            if folder.is_dir():
                found.add(folder)
            continue
        for path in worktree.glob(pattern):
            if path.is_file() and path.suffix != ".py":
                found.add(path)
    return tuple(sorted(found))


def job_spec(
    worktree: Path,
    run_dir: Path,
    view_dir: Path | None,
    protected_patterns: Iterable[str],
    run_env: Mapping[str, str],
    extra_hidden: Iterable[Path] = (),
) -> SandboxSpec:
    """The spec for ``worktree``'s job writing into ``run_dir``; ``run_env`` holds the runner's variables."""
    env = dict(run_env)
    readonly = [worktree]
    if view_dir is not None:
        env[VIEW_VAR] = str(view_dir)
        readonly.append(view_dir)
    hidden = (*raw_data_paths(worktree, protected_patterns), *extra_hidden)
    return SandboxSpec(
        workdir=worktree, writable=(run_dir,), readonly=tuple(readonly), hidden=hidden, env=env
    )
