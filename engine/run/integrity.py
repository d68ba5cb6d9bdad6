"""Checks that nothing a candidate did persists into the next one's interpreter or workspace.

``take_fingerprint`` records, cheaply (a directory listing, a few small files, one git
command), the interpreter afr runs candidates with: its path, ``sys.path``, every ``.pth``
file of site-packages (they run code at interpreter start-up) and site-packages' top-level
listing, plus the workspace's branch heads. ``fingerprint_problem`` compares a new one with
the campaign's record and names the first difference in one line. The engine records it
at campaign start, moves its own record when it moves a branch (``with_head``) and stops
before a candidate when a problem is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import site
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.store.gitsafe import run_git

AFR_SOURCE = Path(__file__).resolve().parents[2]  # the folder holding the engine package


@dataclass(frozen=True)
class Fingerprint:
    executable: str
    sys_path: tuple[str, ...]
    pth_files: dict[str, str] = field(default_factory=dict)  # path -> SHA-256
    site_listing: dict[str, int] = field(default_factory=dict)  # top-level entry -> mtime (ns)
    heads: dict[str, str] = field(default_factory=dict)  # refs/heads/... -> commit

    def with_head(self, ref: str, commit: str) -> Fingerprint:
        """The record after afr itself moved ``ref`` (a kept candidate, a checkpoint)."""
        name = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
        return replace(self, heads={**self.heads, name: commit})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Fingerprint:
        data = json.loads(text)
        data["sys_path"] = tuple(data["sys_path"])
        return cls(**data)


def site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return sorted({Path(d) for d in dirs if Path(d).is_dir()})


def branch_heads(workspace: Path) -> dict[str, str]:
    done = run_git(workspace, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
    return dict(line.split(" ", 1) for line in done.stdout.decode().splitlines() if " " in line)


def take_fingerprint(workspace: Path | None = None, sites: list[Path] | None = None) -> Fingerprint:
    """The interpreter's fingerprint (``sites``: site-packages folders, default this interpreter's)."""
    pth, listing = {}, {}
    for folder in site_dirs() if sites is None else sites:
        for entry in os.scandir(folder):
            key = f"{folder}/{entry.name}"
            listing[key] = entry.stat(follow_symlinks=False).st_mtime_ns
            if entry.name.endswith(".pth") and entry.is_file():
                pth[key] = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
    heads = branch_heads(workspace) if workspace is not None else {}
    return Fingerprint(sys.executable, tuple(sys.path), pth, listing, heads)


def fingerprint_problem(recorded: Fingerprint, current: Fingerprint) -> str | None:
    """One line naming what changed since the record, or None."""
    if current.executable != recorded.executable:
        return f"the interpreter changed: {recorded.executable} -> {current.executable}"
    if current.sys_path != recorded.sys_path:
        added = [p for p in current.sys_path if p not in recorded.sys_path]
        return f"sys.path changed{': added ' + added[0] if added else ''}"
    for name, digest in sorted(current.pth_files.items()):
        if recorded.pth_files.get(name) != digest:
            return f"{name} is new or changed since the campaign started (a .pth runs code at start-up)"
    for name in sorted(set(current.site_listing) ^ set(recorded.site_listing)):
        change = "appeared in" if name in current.site_listing else "disappeared from"
        return f"{Path(name).name} {change} site-packages since the campaign started"
    for name, mtime in sorted(current.site_listing.items()):
        if recorded.site_listing[name] != mtime:
            return f"{name} in site-packages was modified since the campaign started"
    for ref in sorted(set(recorded.heads) | set(current.heads)):
        if recorded.heads.get(ref) != current.heads.get(ref):
            return f"workspace branch {ref} moved outside afr ({recorded.heads.get(ref, 'absent')[:12]} -> {current.heads.get(ref, 'absent')[:12]})"
    return None


def untrusted_path_entries(workspace: Path | None = None, cwd: Path | None = None) -> list[str]:
    """``sys.path`` entries that resolve to the working directory or the workspace root.

    The folder afr itself is imported from is kept: in a development checkout that is the
    workspace too, and candidates never write there (they get worktrees of their own).
    """
    bad = {Path(cwd or os.getcwd()).resolve()}
    if workspace is not None:
        bad.add(Path(workspace).resolve())
    bad.discard(AFR_SOURCE)
    found = []
    for entry in sys.path:
        resolved = Path(entry or os.getcwd()).resolve()
        if entry == "" or resolved in bad:
            found.append(entry)
    return found


def drop_untrusted_paths(workspace: Path | None = None) -> list[str]:
    """Remove the working directory and the workspace root from ``sys.path`` (the engine's start-up).

    A module dropped into either (a shadow ``psutil.py``) would otherwise be imported by the
    engine. Returns the removed entries. Call it first thing in ``afr``'s entry point, before
    anything but the standard library is imported.
    """
    removed = untrusted_path_entries(workspace)
    sys.path[:] = [entry for entry in sys.path if entry not in removed]
    return removed
