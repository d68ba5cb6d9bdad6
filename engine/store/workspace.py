"""Campaign workspaces: git repositories holding program.md, profiles/, tasks/ and skills/."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import git

from engine.store.bundle import TEMPLATE_ENTRIES, bundle_root, is_workspace
from engine.store.gitsafe import harden_gitpython
from engine.store.redact import redact

WORKSPACE_GITIGNORE = """\
# afr campaign state (ledgers, journals, logs, NVFlare runs) stays out of git
.afr/
__pycache__/
*.pyc
"""
IGNORED_WHEN_COPYING = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def init_workspace(dest: Path, exist_ok: bool = False) -> tuple[Path, bool]:
    """Make ``dest`` a workspace repository from the bundled template.

    Returns the path and whether it was created. An existing workspace is an error unless
    ``exist_ok``; a non-empty folder that is not a workspace is always refused, so no
    user file is overwritten.
    """
    dest = dest.expanduser().resolve()
    if is_workspace(dest):
        if exist_ok:
            return dest, False
        raise FileExistsError(f"{dest} is already an afr workspace")
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty; choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    source = bundle_root()
    for entry in TEMPLATE_ENTRIES:
        origin = source / entry
        if origin.is_dir():
            shutil.copytree(origin, dest / entry, ignore=IGNORED_WHEN_COPYING)
        else:
            shutil.copy2(origin, dest / entry)
    (dest / ".gitignore").write_text(WORKSPACE_GITIGNORE)
    repo = git.Repo.init(dest, initial_branch="main")
    with repo.config_writer() as config:
        # A workspace commits on the researcher's behalf; give it an identity if git has none.
        if not config.has_option("user", "name"):
            config.set_value("user", "name", "afr")
            config.set_value("user", "email", "afr@localhost")
    repo.git.add(A=True)
    repo.index.commit("afr workspace from the bundled template")
    return dest, True


def changed_paths(worktree: Path) -> list[tuple[str, str]]:
    """``(status, path)`` for every uncommitted change in a checkout, untracked files included."""
    changes = []
    for entry in safe_repo(worktree).git.status("--porcelain=v1", "-z", "--untracked-files=all").split("\0"):
        if entry:
            changes.append((entry[:2].strip() or "M", entry[3:]))
    return changes


def committed_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """SHA-256 of each path as committed at HEAD (``missing`` if it is not committed)."""
    git_ = safe_repo(root).git
    hashes = {}
    for path in paths:
        try:
            blob = git_.execute(
                ["git", "cat-file", "blob", f"HEAD:{path}"],
                stdout_as_string=False,
                strip_newline_in_stdout=False,
            )
            hashes[path] = hashlib.sha256(blob).hexdigest()
        except git.GitCommandError:
            hashes[path] = "missing"
    return hashes


class ApartGit(git.Git):
    """GitPython's git runner with each git in its own session. Ctrl-C in a terminal reaches its
    whole foreground group: a git the engine runs while a candidate runs (preparing the next
    one) would die of it and crash the engine, when the first Ctrl-C only asks for a stop."""

    def execute(self, *args, **kwargs):
        kwargs.setdefault("start_new_session", True)
        return super().execute(*args, **kwargs)


class SafeRepo(git.Repo):
    GitCommandWrapperType = ApartGit


def safe_repo(path: Path) -> git.Repo:
    """A GitPython repo whose every command runs without hooks, config-driven helpers or
    external diff drivers: candidate code can write into ``.git`` (a worktree's files point
    there), and nothing it plants may run in the engine's name."""
    repo = SafeRepo(path)
    harden_gitpython(repo.git)
    return repo


# Worktrees are added and pruned from several threads (the campaign's, proposals' drafts): one at
# a time, so a prune never meets a worktree half made.
_WORKTREES = threading.RLock()


class CampaignRepo:
    """The git side of one campaign: its branch, one worktree and commit per candidate.

    The user's own checkout is never switched or touched: candidates live in worktrees
    under the campaign directory, kept candidates fast-forward ``autoresearch/<tag>``,
    discarded ones stay reachable under ``refs/afr/<tag>/<candidate>``, and ``results.tsv``
    is committed onto the branch with a private index.
    """

    def __init__(self, root: Path, tag: str) -> None:
        # Only one-shot git commands here, never GitPython's object database: that keeps a
        # `git cat-file` child alive, which a Ctrl-C at the terminal kills with the engine's
        # process group, and the graceful stop after it would then fail on a broken pipe.
        self.root = Path(root)
        self.tag = tag
        self.repo = safe_repo(self.root)
        self.branch = f"autoresearch/{tag}"
        self.worktrees = self.root / ".afr" / "campaigns" / tag / "worktrees"

    def start(self) -> str:
        """Create the campaign branch at the checkout's HEAD (once); return its tip."""
        if self.branch not in [head.name for head in self.repo.heads]:
            self.repo.git.branch(self.branch, self.repo.git.rev_parse("HEAD"))
        return self.head()

    def head(self) -> str:
        return self.repo.git.rev_parse(self.branch)

    def _tree(self, commit: str) -> str:
        return self.repo.git.rev_parse(f"{commit}^{{tree}}")

    def worktree_for(self, candidate_id: str, parent: str) -> Path:
        path = self.worktrees / candidate_id
        if path.exists():
            self.remove_worktree(candidate_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _WORKTREES:
            self.repo.git.worktree("add", "--detach", "--force", str(path), parent)
        return path

    def changed_paths(self, worktree: Path) -> list[tuple[str, str]]:
        """``(status, path)`` for every change in the worktree, untracked files included."""
        changes = []
        for line in (
            safe_repo(worktree).git.status("--porcelain=v1", "-z", "--untracked-files=all").split("\0")
        ):
            if not line:
                continue
            status, path = line[:2], line[3:]
            changes.append((status.strip() or "M", path))
        return changes

    def commit_candidate(self, worktree: Path, message: str) -> str | None:
        """Commit every change in the worktree; None when there is nothing to commit."""
        repo = safe_repo(worktree)
        repo.git.add(A=True)
        if not repo.git.diff("--cached", "--name-only"):
            return None
        repo.git.commit("-q", "--no-verify", "-m", redact(message))
        return repo.git.rev_parse("HEAD")

    def remove_worktree(self, candidate_id: str) -> None:
        path = self.worktrees / candidate_id
        with _WORKTREES:
            if path.exists():
                self.repo.git.worktree("remove", "--force", str(path))
            self.repo.git.worktree("prune")

    def keep(self, sha: str, message: str) -> str:
        """Advance the branch to a kept candidate's recipe.

        A descendant of the tip is a fast-forward, the tip itself (args only) an empty commit. A
        candidate that branched before the tip moved (prepared while others ran, a human override)
        gets a commit on the tip whose tree is the candidate's own, since that tree is what scored,
        with the tip's results.tsv and the candidate's commit as a second parent (its history stays).
        """
        tip = self.head()
        if sha != tip and self.repo.is_ancestor(tip, sha):
            self.repo.git.update_ref(f"refs/heads/{self.branch}", sha, tip)
            return sha
        parents = ["-p", tip]
        if not self.repo.is_ancestor(sha, tip):
            parents += ["-p", sha]
        tree = self._tree(tip) if sha == tip else self._tree_with_results(sha, tip)
        commit = self.repo.git.commit_tree(tree, *parents, "-m", redact(message))
        self.repo.git.update_ref(f"refs/heads/{self.branch}", commit, tip)
        return commit

    def _tree_with_results(self, sha: str, tip: str) -> str:
        """``sha``'s tree with ``tip``'s results.tsv (the ledger moves on; the recipe is ``sha``'s)."""
        index = self.root / ".afr" / "campaigns" / self.tag / "keep.index"
        env = {"GIT_INDEX_FILE": str(index)}
        git_ = self.repo.git
        git_.read_tree(sha, env=env)
        try:
            blob = git_.rev_parse(f"{tip}:results.tsv")
            git_.update_index("--add", "--cacheinfo", f"100644,{blob},results.tsv", env=env)
        except git.GitCommandError:  # no ledger committed yet
            pass
        tree = git_.write_tree(env=env)
        index.unlink(missing_ok=True)
        return tree

    def archive(self, candidate_id: str, sha: str) -> None:
        """Keep a discarded candidate's commit reachable for provenance."""
        self.repo.git.update_ref(f"refs/afr/{self.tag}/{candidate_id}", sha)

    def checkpoint(self, results: Path, message: str) -> str:
        """Commit ``results`` as ``results.tsv`` at the branch tip without touching any checkout."""
        tip = self.head()
        index = self.root / ".afr" / "campaigns" / self.tag / "checkpoint.index"
        env = {"GIT_INDEX_FILE": str(index)}
        git_ = self.repo.git
        git_.read_tree(tip, env=env)
        blob = git_.hash_object("-w", str(results))
        git_.update_index("--add", "--cacheinfo", f"100644,{blob},results.tsv", env=env)
        tree = git_.write_tree(env=env)
        index.unlink(missing_ok=True)
        if tree == self._tree(tip):
            return tip
        commit = git_.commit_tree(tree, "-p", tip, "-m", redact(message))
        git_.update_ref(f"refs/heads/{self.branch}", commit, tip)
        return commit

    def commit_files(self, files: dict[str, Path], message: str) -> str:
        """Commit each file at its branch path (e.g. ``reports/x.md``) on the branch tip, like ``checkpoint``."""
        tip = self.head()
        index = self.root / ".afr" / "campaigns" / self.tag / "commit-files.index"
        env = {"GIT_INDEX_FILE": str(index)}
        git_ = self.repo.git
        try:
            git_.read_tree(tip, env=env)
            for branch_path, source in files.items():
                blob = git_.hash_object("-w", str(source))
                git_.update_index("--add", "--cacheinfo", f"100644,{blob},{branch_path}", env=env)
            tree = git_.write_tree(env=env)
        finally:
            index.unlink(missing_ok=True)
        if tree == self._tree(tip):
            return tip
        commit = git_.commit_tree(tree, "-p", tip, "-m", redact(message))
        git_.update_ref(f"refs/heads/{self.branch}", commit, tip)
        return commit

    def diff(self, parent: str, sha: str) -> str:
        return self.repo.git.diff("--no-ext-diff", "--no-textconv", parent, sha, "--", ".", ":(exclude)results.tsv")

    def log(self) -> list[str]:
        return self.repo.git.log("--format=%h %s", self.branch).splitlines()
