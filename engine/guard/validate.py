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

from engine.guard.contract import check_client_source
from engine.profile import Profile, Scalar
from engine.run.jobbox import raw_data_paths
from engine.run.sandbox import SandboxSpec, wrap

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


MAX_EDIT_BYTES = 200_000


def content_problem(path: str, text: object) -> str | None:
    """Why ``text`` cannot be the content of a source file, or None."""
    if not isinstance(text, str):
        return f"{path}: content is not text"
    if "\x00" in text:
        return f"{path}: binary content (NUL bytes)"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{path}: content is not valid UTF-8 text"
    if size > MAX_EDIT_BYTES:
        return f"{path}: content of {size} bytes is over the {MAX_EDIT_BYTES}-byte limit"
    return None


def apply_edits(worktree: Path, edits: dict[str, str], profile: Profile) -> str:
    """Write a proposer's file edits into the worktree; the first refusal's reason, or "".

    Every edit is checked before any is written, so a refused set leaves the worktree as it was.
    """
    for path, text in edits.items():
        problem = path_problem(path, profile) if isinstance(path, str) else "a path is not text"
        problem = problem or content_problem(path, text)
        if problem:
            return problem
        if (worktree / path).is_symlink() or any(p.is_symlink() for p in (worktree / path).parents):
            return f"{path} is a symlink"
    for path, text in edits.items():
        (worktree / path).write_text(text, encoding="utf-8")
    return ""


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


def check_models(
    worktree: Path, profile: Profile, archs: list[str], timeout: float = 60.0, sandbox_spec=None
) -> dict[str, str]:
    """Build each architecture in one separate interpreter: candidate code never runs in the engine.

    Returns "ok" or the reason per architecture (unregistered, over the cap, import error).
    ``sandbox_spec`` (an ``engine.run.sandbox.SandboxSpec``) runs that interpreter sandboxed.
    """
    module = profile.task_dir.replace("/", ".") + ".model"
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(worktree)!r})\n"
        f"from {module} import build_model\n"
        "verdicts = {}\n"
        f"for arch in {list(archs)!r}:\n"
        "    try:\n"
        f"        build_model(arch, {profile.budget.max_model_params})\n"
        "        verdicts[arch] = 'ok'\n"
        "    except Exception as error:\n"
        "        verdicts[arch] = str(error).splitlines()[0] if str(error) else type(error).__name__\n"
        "print(json.dumps(verdicts))\n"
    )
    # Candidate code runs at import: always with an allow-listed environment (no provider key),
    # and in the sandbox where one works, seeing the worktree read-only and no raw data.
    boxed = wrap([sys.executable, "-c", probe], sandbox_spec or probe_spec(worktree, profile))
    command, env, cwd = boxed.argv, boxed.env, boxed.cwd
    try:
        # Its own session: a Ctrl-C that asks the engine for a stop must not kill this check.
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        return dict.fromkeys(archs, f"building the model took over {timeout:.0f} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["model.py failed to import"])[-1]
        return dict.fromkeys(archs, f"model.py: {last}")
    return json.loads(lines[-1])


def probe_spec(worktree: Path, profile: Profile) -> SandboxSpec:
    """The architecture probe's sandbox: the checkout read-only, its raw data, git and campaigns hidden."""
    hidden = [*raw_data_paths(worktree, profile.surface.protected)]
    hidden += [worktree / name for name in (".git", ".afr") if (worktree / name).is_dir()]
    return SandboxSpec(workdir=worktree, readonly=(worktree,), hidden=tuple(hidden))


def check_model(worktree: Path, profile: Profile, arch: str) -> str:
    return check_models(worktree, profile, [arch])[arch]


def model_choices(profile: Profile) -> list[str]:
    """Every architecture a candidate may name through args."""
    arg = profile.mutable.get("model_arch")
    choices = [str(c) for c in arg.choices] if arg and arg.choices else []
    baseline = str(profile.baseline.get("model_arch", ""))
    return sorted({*choices, baseline} - {""})


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


# The engine alone chooses which part of each client's evaluation split is scored (the
# protected tasks/shared/holdout.py reads these from the job's environment); an edited
# file that names them could score on, or train on, the held-out rows.
EVALUATION_NAMES = ("AFR_EVAL_SUBSET", "AFR_HELDOUT_FRACTION", "AFR_HELDOUT_SEED", "holdout")


def evaluation_tampering(worktree: Path, changes: list[tuple[str, str]]) -> list[str]:
    problems = []
    for _, path in changes:
        file = worktree / path
        if not path.endswith(".py") or not file.is_file() or file.is_symlink():
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        named = [name for name in EVALUATION_NAMES if name in text]
        if named:
            problems.append(
                f"{path} names {named[0]}: only the engine chooses the evaluation subset (held-out split)"
            )
    return problems


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
    contract = contract or evaluation_tampering(worktree, changes)
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
