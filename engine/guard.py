"""Everything that rejects a candidate before it runs, each with a one-line reason.

The six checks of the design, in order: (1) the edits touch only editable files, with no
path escapes or symlinks; (2) the args are declared mutable, typed and in range, and no
fixed budget field changes; (3) the client keeps the FL contract; (4) every edited Python
file compiles; (5) the model is a registered architecture under the parameter cap;
(6) the protected files are byte-identical to the campaign's start.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.contract import check_client_source
from engine.profile import Profile, Scalar

CHECKS = ("surface", "args", "contract", "compile", "model", "integrity")


@dataclass
class Verdict:
    checks: dict[str, str] = field(default_factory=dict)  # check -> "ok" or the reason

    @property
    def ok(self) -> bool:
        return all(result == "ok" for result in self.checks.values())

    @property
    def reason(self) -> str:
        """The first failing check's reason, one line."""
        return next((f"{name}: {result}" for name, result in self.checks.items() if result != "ok"), "")


def protected_files(root: Path, profile: Profile) -> list[Path]:
    files = set()
    for pattern in profile.surface.protected:
        files.update(path for path in root.glob(pattern) if path.is_file())
    return sorted(files)


def protected_hashes(root: Path, profile: Profile) -> dict[str, str]:
    """SHA-256 of every protected file, keyed by its path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in protected_files(root, profile)
    }


def path_problem(path: str, profile: Profile) -> str | None:
    """Why an edit of ``path`` (relative to the workspace) is not allowed, or None."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        return f"{path} escapes the workspace"
    if any(_matches(path, pattern) for pattern in profile.surface.protected):
        return f"{path} is protected"
    if path not in profile.surface.editable:
        return f"{path} is not an editable file of profile {profile.name}"
    return None


def _matches(path: str, pattern: str) -> bool:
    return PurePosixPath(path).match(pattern) or path == pattern


def check_surface(worktree: Path, changes: list[tuple[str, str]], profile: Profile) -> str:
    for status, path in changes:
        problem = path_problem(path, profile)
        if problem:
            return problem
        if (worktree / path).is_symlink():
            return f"{path} is a symlink"
        if "D" in status:
            return f"{path} was deleted"
    return "ok"


def check_compiles(worktree: Path, changes: list[tuple[str, str]]) -> str:
    for _, path in changes:
        if path.endswith(".py"):
            source = (worktree / path).read_text(encoding="utf-8", errors="replace")
            try:
                compile(source, path, "exec")
            except SyntaxError as error:
                return f"{path}:{error.lineno}: syntax error: {error.msg}"
    return "ok"


def check_model(worktree: Path, profile: Profile, arch: str, timeout: float = 60.0) -> str:
    """Build the architecture in a separate interpreter: candidate code never runs in the engine."""
    module = profile.task_dir.replace("/", ".") + ".model"
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(worktree)!r})\n"
        f"from {module} import build_model, count_parameters\n"
        "try:\n"
        f"    model = build_model({arch!r}, {profile.budget.max_model_params})\n"
        "    print(json.dumps({'params': count_parameters(model)}))\n"
        "except Exception as error:\n"
        "    print(json.dumps({'error': str(error)}))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=worktree, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"building {arch!r} took over {timeout:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["model.py failed to import"])[-1]
        return f"model.py: {last}"
    answer = json.loads(lines[-1])
    return answer.get("error", "ok")


def check_integrity(worktree: Path, profile: Profile, expected: dict[str, str]) -> str:
    actual = protected_hashes(worktree, profile)
    for path, digest in expected.items():
        if path not in actual:
            return f"protected file {path} is missing"
        if actual[path] != digest:
            return f"protected file {path} changed (SHA-256 differs from the campaign start)"
    extra = sorted(set(actual) - set(expected))
    if extra:
        return f"new file {extra[0]} under a protected pattern"
    return "ok"


def validate(
    worktree: Path,
    changes: list[tuple[str, str]],
    profile: Profile,
    args: dict[str, Scalar],
    expected_hashes: dict[str, str],
    model_checked: dict[str, str] | None = None,
) -> Verdict:
    """Run every check; the verdict holds each one's result (later checks still run for the record).

    ``model_checked`` caches architecture verdicts of the unchanged ``model.py``, so an
    args-only candidate costs no extra interpreter.
    """
    verdict = Verdict()
    verdict.checks["surface"] = check_surface(worktree, changes, profile)
    problems = profile.check_args(args)
    verdict.checks["args"] = problems[0] if problems else "ok"
    client = worktree / profile.task_dir / "client.py"
    contract = (
        check_client_source(client.read_text(encoding="utf-8"), f"{profile.task_dir}/client.py")
        if client.is_file()
        else [f"{profile.task_dir}/client.py is missing"]
    )
    verdict.checks["contract"] = contract[0] if contract else "ok"
    verdict.checks["compile"] = check_compiles(worktree, changes)
    arch = str(args.get("model_arch", profile.baseline.get("model_arch", "")))
    model_edited = any(path == f"{profile.task_dir}/model.py" for _, path in changes)
    if verdict.checks["compile"] != "ok" or verdict.checks["surface"] != "ok":
        verdict.checks["model"] = "not checked: the edits are refused"
    elif model_checked is not None and not model_edited and arch in model_checked:
        verdict.checks["model"] = model_checked[arch]
    else:
        verdict.checks["model"] = check_model(worktree, profile, arch)
        if model_checked is not None and not model_edited:
            model_checked[arch] = verdict.checks["model"]
    verdict.checks["integrity"] = check_integrity(worktree, profile, expected_hashes)
    return verdict
