"""Campaign workspaces: git repositories holding program.md, profiles/, tasks/ and skills/."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

from engine.resources import TEMPLATE_ENTRIES, bundle_root, is_workspace

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
