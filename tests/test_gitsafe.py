"""afr's git commands ignore hooks and config-driven helpers planted in the repository."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import git
import pytest

from engine.store.gitsafe import NO_EXTERNAL_DIFF, git_env, harden_gitpython, run_git


def plain_git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)


def script(path: Path, marker: Path) -> Path:
    path.write_text(f"#!/bin/sh\necho fired >> {marker}\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture()
def repo(tmp_path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    plain_git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n")
    plain_git(root, "add", "-A")
    plain_git(root, "commit", "-q", "-m", "first")
    return root


def test_a_planted_post_commit_hook_does_not_fire(repo, tmp_path):
    marker = tmp_path / "hook-fired"
    script(repo / ".git" / "hooks" / "post-commit", marker)
    (repo / "a.txt").write_text("b\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "--no-verify", "-m", "through afr")
    assert not marker.exists()
    assert run_git(repo, "log", "--format=%s").stdout.decode().splitlines()[0] == "through afr"
    # The same hook does fire for plain git, even with --no-verify: it is live.
    (repo / "a.txt").write_text("c\n")
    plain_git(repo, "commit", "-q", "-a", "--no-verify", "-m", "plain")
    assert marker.read_text() == "fired\n"


def test_a_hook_in_a_worktree_and_a_hooks_path_config_do_not_fire(repo, tmp_path):
    marker = tmp_path / "fired"
    hooks = tmp_path / "planted-hooks"
    hooks.mkdir()
    script(hooks / "post-commit", marker)
    script(hooks / "pre-commit", marker)
    plain_git(repo, "config", "core.hooksPath", str(hooks))
    worktree = tmp_path / "candidate"
    run_git(repo, "worktree", "add", "--detach", str(worktree), "HEAD")
    (worktree / "a.txt").write_text("candidate\n")
    run_git(worktree, "commit", "-q", "-a", "-m", "candidate")
    assert not marker.exists()


def test_config_driven_helpers_do_not_run(repo, tmp_path):
    marker = tmp_path / "helper-ran"
    helper = script(tmp_path / "helper.sh", marker)
    plain_git(repo, "config", "diff.external", str(helper))
    plain_git(repo, "config", "core.fsmonitor", str(helper))
    plain_git(repo, "config", "core.pager", str(helper))
    (repo / "a.txt").write_text("changed\n")
    run_git(repo, "status", "--porcelain")
    diff = run_git(repo, "diff").stdout.decode()
    assert "+changed" in diff
    assert not marker.exists()
    plain_git(repo, "diff")  # plain git does run the planted external diff
    assert marker.exists()


def test_gitpython_can_be_hardened_the_same_way(repo, tmp_path):
    marker = tmp_path / "fired"
    script(repo / ".git" / "hooks" / "post-commit", marker)
    handle = git.Repo(repo).git
    harden_gitpython(handle)
    (repo / "a.txt").write_text("gitpython\n")
    handle.add(A=True)
    handle.commit("-q", "--no-verify", "-m", "via gitpython")
    assert not marker.exists()
    plain_git(repo, "config", "diff.external", str(script(tmp_path / "helper.sh", marker)))
    (repo / "a.txt").write_text("again\n")
    assert "+again" in handle.diff(*NO_EXTERNAL_DIFF)
    assert not marker.exists()
    assert handle.log("-1", "--format=%s") == "via gitpython"


def test_environment_drops_redirections():
    env = git_env(
        {
            "GIT_DIR": "/elsewhere",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "core.hooksPath",
            "PATH": "/usr/bin",
        }
    )
    assert "GIT_DIR" not in env and "GIT_CONFIG_COUNT" not in env and "GIT_CONFIG_KEY_0" not in env
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"


def test_afr_s_git_runs_in_its_own_session(tmp_path):
    """The terminal's Ctrl-C (SIGINT to its foreground group) asks the engine for a stop; a git
    the engine runs at that moment, preparing the next candidate, must not die of it."""
    import os
    import sys

    from engine.store.workspace import safe_repo

    git.Repo.init(tmp_path)
    repo = safe_repo(tmp_path)
    child_session = repo.git.execute([sys.executable, "-c", "import os; print(os.getsid(0))"])
    assert int(child_session) != os.getsid(0)
    done = run_git(tmp_path, "rev-parse", "--git-dir")  # the plain runner too
    assert done.returncode == 0
