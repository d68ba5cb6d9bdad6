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


class WorkspaceError(FileNotFoundError):
    """No workspace where the user is, or only afr's own tree; one line saying how to make one."""


def find_workspace(start: Path) -> Path | None:
    """The nearest folder from ``start`` upward that is an afr workspace."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if is_workspace(folder):
            return folder
    return None


def resolve_root(workspace: str | Path | None, bundle_fallback: bool = False) -> Path:
    """The workspace to work in: the one given, else the nearest enclosing one from the current folder.

    afr's own tree (a checkout or an installation) is a workspace only when named explicitly,
    so a campaign never lands in it by accident. ``bundle_fallback`` is for commands that only
    read the bundled profiles (``afr data``): they fall back to the bundle instead of failing.
    """
    if workspace is not None:
        root = Path(workspace).expanduser().resolve()
        if not is_workspace(root):
            raise WorkspaceError(
                f"{root} is not an afr workspace (no profiles/ and tasks/); run `afr init {root}`"
            )
        return root
    cwd = Path.cwd().resolve()
    found = find_workspace(cwd)
    own = bundle_root().resolve()
    if found is not None and found != own:
        return found
    if bundle_fallback:
        return own
    if found == own:
        raise WorkspaceError(
            f"{own} is afr's own tree, not a workspace; make one with `afr init DIR` and run afr there, "
            f"or pass --workspace {own} to use this tree on purpose"
        )
    raise WorkspaceError(
        f"no afr workspace in {cwd} or any folder above it; make one with `afr init DIR` and run afr "
        "inside it, or pass --workspace DIR"
    )


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
