"""The run sandbox: bubblewrap around everything that executes candidate code.

A candidate's code (the NVFlare job, the evaluator's model process, the architecture probe)
runs with an allow-listed environment, a filesystem built from an allow-list of mounts (the
system and the Python environment read-only, its worktree and run directory writable,
nothing else of the host: not ``$HOME``, not the campaign directory, not the workspace's
``.git``), its own PID, IPC and network namespaces (loopback only: NVFlare's simulator server
and clients talk over 127.0.0.1 inside the same sandbox) and no capabilities. When the
command exits, bubblewrap's init process exits and the kernel kills every process left in
the PID namespace, so a daemon cannot outlive its run.

Without bubblewrap the command runs directly, still with the allow-listed environment; the
caller reports ``sandbox: none``.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "/usr/bin/bwrap"
FORCE_VAR = "AFR_SANDBOX"  # "none" makes detect_sandbox() report none (tests of the fallback)
SANDBOX_HOME = "/tmp/home"  # a private, empty $HOME on the sandbox's own /tmp

# Variables a sandboxed command may inherit. Everything else is dropped: provider keys
# (OPENAI_API_KEY...), cloud credentials, SSH agents, the user's HOME and shell state. The
# list holds what Python, PyTorch, CUDA and NVFlare need, plus the run variables the
# engine itself sets. Exact names are taken as they are; prefixes are further filtered by
# SECRET_PATTERNS (NVIDIA_API_KEY is a provider key, NVIDIA_VISIBLE_DEVICES is not).
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "PYTHONHASHSEED",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPATH",  # only as the runner sets it (the worktree), see sandbox_environment
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "CUBLAS_WORKSPACE_CONFIG",
        # the run variables the engine sets for the job (see engine/runner.py, tasks/shared/holdout.py)
        "AFR_RUN_TOKEN",
        "AFR_EVAL_SUBSET",
        "AFR_HELDOUT_FRACTION",
        "AFR_HELDOUT_SEED",
        "AFR_DATA_VIEW",
        "AFR_CLIENT_POLL_INTERVAL",  # the lean knob afr's launch sets (engine/run/launch.py)
        "AFR_STEP_LOG",  # the trusted step counter's FIFO (engine/run/stepcount.py)
    }
)
ALLOWED_PREFIXES = ("LC_", "NVIDIA_")
SECRET_PATTERNS = ("*_API_KEY", "*_KEY", "*_TOKEN", "*_SECRET", "*SECRET*", "*PASSWORD*", "*CREDENTIAL*")

# System directories mounted read-only; on a merged-/usr system /bin, /lib... are symlinks
# into /usr and are recreated as such.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt")
# Readable system files a sandbox has no business with.
SYSTEM_HIDDEN = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh", "/etc/sudoers")


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed command may see and touch."""

    workdir: Path  # its working directory, usually the candidate's worktree
    writable: tuple[Path, ...] = ()  # the worktree, the run directory
    readonly: tuple[Path, ...] = ()  # per-site data views, evaluation inputs, anything else it reads
    hidden: tuple[Path, ...] = ()  # paths inside the above that must look empty (raw data, held-out rows)
    env: Mapping[str, str] = field(default_factory=dict)  # run variables, names from ALLOWED_NAMES
    loopback_only: bool = True  # own network namespace with only `lo`; False shares the host's


@dataclass(frozen=True)
class SandboxedCommand:
    """What to start: ``subprocess.Popen(argv, env=env, cwd=cwd)``."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    sandbox: str  # "bwrap" or "none"


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_PATTERNS)


def allowed_name(name: str) -> bool:
    if name in ALLOWED_NAMES:
        return True
    return name.startswith(ALLOWED_PREFIXES) and not is_secret_name(name)


def sandbox_environment(source: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of ``source`` plus the runner's ``extra`` variables.

    ``extra`` is checked against the same allow-list, so a caller cannot pass a key in by
    mistake; HOME and TMPDIR point into the sandbox's private /tmp. PYTHONPATH is never
    inherited: only the runner's value (the worktree) reaches the command.
    """
    refused = sorted(name for name in extra if not allowed_name(name))
    if refused:
        raise ValueError(f"sandbox environment does not allow {', '.join(refused)}")
    env = {name: value for name, value in source.items() if allowed_name(name) and name != "PYTHONPATH"}
    env.update(extra)
    env["HOME"] = SANDBOX_HOME
    env["TMPDIR"] = "/tmp"
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def python_roots() -> list[Path]:
    """The interpreter's installation and virtual environment, to be mounted read-only."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent}
    return sorted(root.resolve() for root in roots)


def _system_mounts() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _hide(path: Path) -> list[str]:
    """An empty read-only directory, or /dev/null, in place of ``path``."""
    if path.is_dir():
        return ["--tmpfs", str(path), "--remount-ro", str(path)]
    return ["--ro-bind-try", "/dev/null", str(path)]


def gpu_devices() -> list[str]:
    """NVIDIA device nodes to pass through (``--dev`` alone gives a minimal /dev without them).

    Not exercised on the CPU machine this was built on; CUDA also needs the driver's
    libraries, which live under /usr and are mounted read-only.
    """
    return sorted(glob.glob("/dev/nvidia*")) + [d for d in ("/dev/dri",) if os.path.isdir(d)]


def bwrap_argv(
    command: Sequence[str], spec: SandboxSpec, env: Mapping[str, str], devices: Sequence[str] | None = None
) -> list[str]:
    """The full ``bwrap ... -- command`` argv for ``spec``; mount order matters (later shadows earlier)."""
    args = [BWRAP, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--hostname", "afr-sandbox", "--cap-drop", "ALL"]
    if spec.loopback_only:
        args.append("--unshare-net")
    args += _system_mounts()
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm"]  # own /proc, a minimal /dev
    for device in gpu_devices() if devices is None else devices:
        args += ["--dev-bind-try", device, device]
    args += ["--tmpfs", "/tmp", "--dir", SANDBOX_HOME]  # private /tmp and an empty $HOME in it
    for root in python_roots():
        args += ["--ro-bind", str(root), str(root)]
    for path in spec.writable:
        args += ["--bind", str(Path(path).resolve()), str(Path(path).resolve())]
    for path in spec.readonly:
        args += ["--ro-bind", str(Path(path).resolve()), str(Path(path).resolve())]
    for path in [*map(Path, SYSTEM_HIDDEN), *spec.hidden]:
        if Path(path).exists():
            args += _hide(Path(path).resolve())
    args += ["--clearenv"]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    args += ["--chdir", str(Path(spec.workdir).resolve()), "--", *command]
    return args


def wrap(command: Sequence[str], spec: SandboxSpec, sandbox: str | None = None) -> SandboxedCommand:
    """``command`` ready to start under ``sandbox`` ("bwrap", "none"; default: what works here)."""
    sandbox = sandbox or detect_sandbox()
    env = sandbox_environment(os.environ, spec.env)
    if sandbox == "bwrap":
        return SandboxedCommand(bwrap_argv(command, spec, env), {}, str(spec.workdir), "bwrap")
    if sandbox != "none":
        raise ValueError(f"unknown sandbox {sandbox!r}; expected bwrap or none")
    # Without a sandbox only the environment is scrubbed; HOME is not the user's (caches
    # written there would otherwise land in the worktree or the user's home).
    env["HOME"] = env["TMPDIR"] = tempfile.gettempdir()
    return SandboxedCommand(list(command), env, str(spec.workdir), "none")


@functools.cache
def detect_sandbox() -> str:
    """ "bwrap" when bubblewrap can build the sandbox this module asks for here, else "none"."""
    if os.environ.get(FORCE_VAR, "").lower() == "none":
        return "none"
    if not (os.access(BWRAP, os.X_OK) or shutil.which("bwrap")):
        return "none"
    probe = SandboxSpec(workdir=Path("/"))
    argv = bwrap_argv(
        ["/bin/sh", "-c", "test -d /proc/self && echo afr-sandbox-ok"], probe, {"PATH": "/usr/bin:/bin"}
    )
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, env={}, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    return "bwrap" if done.returncode == 0 and "afr-sandbox-ok" in done.stdout else "none"
