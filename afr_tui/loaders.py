"""Blocking reads the cockpit does on worker threads: the campaign so far, ledger records,
git diffs and growing log files."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from afr_tui.link import Link
from afr_tui.model import CockpitModel
from engine.profile import ProfileError, load_profile, parse_profile

TAIL_BYTES = 64 * 1024


def initial_model(link: Link) -> CockpitModel:
    """The model after every event so far (folded here, off the UI thread)."""
    model = CockpitModel()
    meta = link.meta()
    model.load_meta(meta)
    try:
        profile = (
            parse_profile(meta["profile_toml"])
            if meta.get("profile_toml")
            else load_profile(link.root, meta["profile"])
        )
        model.maximize = profile.maximize
        model.baseline_args = dict(profile.baseline)
    except (KeyError, ProfileError, OSError, ValueError):
        pass  # the plot and deltas assume "higher is better"; nothing else depends on it
    model.replay(link.history())
    return model


def record(directory: Path, cid: str) -> dict:
    """The latest ``candidates.jsonl`` record of ``cid``, found without parsing the others
    (records are written with sorted keys, so the id reads ``"id": "<cid>"``)."""
    try:
        data = (Path(directory) / "candidates.jsonl").read_bytes()
    except FileNotFoundError:
        return {}
    at = data.rfind(f'"id": {json.dumps(cid)}'.encode())
    if at < 0:
        return {}
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    if end < 0:
        return {}  # a record still being written
    try:
        found = json.loads(data[start:end])
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) and found.get("id") == cid else {}


def diff(root: Path, parent: str | None, commit: str | None) -> str:
    """The candidate's change against its parent; empty for an args-only candidate."""
    if not parent or not commit or parent == commit:
        return ""
    done = subprocess.run(
        ["git", "-C", str(root), "diff", parent, commit, "--", ".", ":(exclude)results.tsv"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout if done.returncode == 0 else f"(no diff: {done.stderr.strip()[:200]})"


def tail(path: Path, cancelled: Callable[[], bool], every: float = 0.25) -> Iterator[list[str]]:
    """Lines appended to ``path`` (starting with its last 64 KiB) until cancelled."""
    offset, partial = None, b""
    while not cancelled():
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            time.sleep(every)
            continue
        if offset is None:
            offset = max(0, size - TAIL_BYTES)
        if size > offset:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = partial + handle.read(size - offset)
            offset = size
            *lines, partial = data.split(b"\n")
            if lines:
                yield [line.decode("utf-8", errors="replace") for line in lines]
        time.sleep(every)


def last_line(path: Path) -> str:
    """The last non-empty line of a log (why a background engine ended), or ""."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - 4096))
            lines = [line.strip() for line in handle.read().decode("utf-8", errors="replace").splitlines()]
    except FileNotFoundError:
        return ""
    return next((line for line in reversed(lines) if line), "")[:200]
