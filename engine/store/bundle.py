"""Where the bundled workspace template lives, and how to find a workspace's files."""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATE_ENTRIES = ("program.md", "profiles", "tasks", "skills")


def bundle_root() -> Path:
    """The folder holding ``program.md``, ``profiles/``, ``tasks/`` and ``skills/``.

    A wheel install carries them in ``engine/_bundled``; a checkout (or an editable
    install) has them beside ``engine/``.
    """
    engine_dir = Path(__file__).resolve().parents[1]
    packaged = engine_dir / "_bundled"
    if (packaged / "profiles").is_dir():
        return packaged
    return engine_dir.parent


def is_workspace(path: Path) -> bool:
    return (path / "profiles").is_dir() and (path / "tasks").is_dir()


def resolve_root(workspace: str | Path | None) -> Path:
    """The workspace to work in: the one given, else the current folder if it is one, else the bundle."""
    if workspace is not None:
        root = Path(workspace).expanduser().resolve()
        if not is_workspace(root):
            raise FileNotFoundError(
                f"{root} is not an afr workspace (no profiles/ and tasks/); run `afr init {root}`"
            )
        return root
    cwd = Path.cwd()
    return cwd if is_workspace(cwd) else bundle_root()


def import_root(root: Path) -> None:
    """Make ``tasks`` of this workspace importable (first on ``sys.path``)."""
    text = str(root)
    if text in sys.path:
        sys.path.remove(text)
    sys.path.insert(0, text)
    for name in [m for m in sys.modules if m == "tasks" or m.startswith("tasks.")]:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if not module_file.startswith(text):
            del sys.modules[name]  # a different workspace's copy was imported before
