"""Running git for afr without anything a candidate could have planted in the repository.

A candidate's code runs with write access to its worktree, and a worktree's ``.git`` file
points into the workspace's git directory. Hooks (``post-commit`` fires even with
``--no-verify``), ``core.fsmonitor``, ``diff.external``, filters and ``core.sshCommand``
are all programs git runs on its own; every git command afr issues disables them on its
command line, ignores system and global configuration, and never prompts.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

# `-c` settings that switch off every config-driven program git may start for the
# commands afr uses (commit, worktree, diff, log, show, update-ref, cat-file, archive).
SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.sshCommand=false",
    "core.pager=cat",
    "core.editor=false",
    "core.askPass=",
    "credential.helper=",
    "diff.noprefix=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gpg.program=false",
    "protocol.allow=never",
    "protocol.file.allow=always",
    "protocol.ext.allow=never",
    "filter.lfs.process=",
    "filter.lfs.smudge=",
    "filter.lfs.clean=",
    "filter.lfs.required=false",
    "submodule.recurse=false",
    "uploadpack.packObjectsHook=",
    "safe.bareRepository=explicit",
)

# Environment variables that would point git at other config, another repository or a
# helper program; dropped from git's environment.
UNSAFE_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_EXTERNAL_DIFF",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_EDITOR",
    "GIT_PAGER",
    "GIT_EXEC_PATH",
    "GIT_TEMPLATE_DIR",
    "GIT_PROXY_COMMAND",
)


def git_config_args() -> list[str]:
    """``-c key=value`` pairs for ``git <these> <command> ...``."""
    args: list[str] = []
    for setting in SAFE_CONFIG:
        args += ["-c", setting]
    return args


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) without git's redirections, and with no system or global config."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in UNSAFE_ENV}
    for name in list(env):
        if name.startswith("GIT_CONFIG_KEY_") or name.startswith("GIT_CONFIG_VALUE_"):
            del env[name]
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_PAGER="cat",
        GIT_ATTR_NOSYSTEM="1",
    )
    env.setdefault("GIT_AUTHOR_NAME", "afr")
    env.setdefault("GIT_AUTHOR_EMAIL", "afr@localhost")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    return env


# An empty `diff.external` still makes git try to run "", so the commands that can diff
# are given git's own switches instead.
NO_EXTERNAL_DIFF = ("--no-ext-diff", "--no-textconv")
DIFFING = frozenset({"diff", "log", "show", "format-patch"})


def git_argv(*args: str) -> list[str]:
    """The argv of ``git <args>`` with every config-driven helper disabled.

    With GitPython (``harden_gitpython``), pass ``*NO_EXTERNAL_DIFF`` to diff, log and show yourself.
    """
    if args and args[0] in DIFFING:
        args = (args[0], *NO_EXTERNAL_DIFF, *args[1:])
    return ["git", *git_config_args(), *args]


def run_git(
    cwd: Path | str, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess:
    """Run ``git args`` in ``cwd`` safely; stdout/stderr captured as bytes."""
    return subprocess.run(
        git_argv(*args),
        cwd=cwd,
        env=git_env(),
        input=input,
        capture_output=True,
        check=check,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
        start_new_session=True,  # the terminal's Ctrl-C is for the engine (a stop), not its git
    )


def harden_gitpython(git_cmd) -> None:
    """Make a GitPython ``repo.git`` command object safe the same way (workspace.py uses GitPython).

    ``set_persistent_git_options`` puts the ``-c`` pairs before every subcommand, and
    ``update_environment`` replaces git's config sources and drops the redirections.
    """
    git_cmd.set_persistent_git_options(c=list(SAFE_CONFIG))
    safe = git_env()
    git_cmd.update_environment(**{k: safe[k] for k in safe if k.startswith("GIT_")})
    for name in UNSAFE_ENV:
        if name in os.environ:
            git_cmd.update_environment(**{name: None})

