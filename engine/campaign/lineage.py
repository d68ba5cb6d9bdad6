"""What a candidate changed relative to its parent: the kept candidate it was proposed on top of.

The journal orders everything: a candidate's parent is the last candidate kept (by review or a
human override) before it was proposed, or the baseline configuration when none was. Args are
overrides of the profile's baseline, so a change is a difference of effective configurations.
"""

from __future__ import annotations

from pathlib import Path

from engine.control.events import EventType
from engine.store.journal import read_events


def parent_of(journal: Path, cid: str) -> str | None:
    """The id of the kept candidate ``cid`` was proposed on, or None (the baseline configuration)."""
    parent = None
    if not journal.exists():
        return None
    for event in read_events(journal):
        data = event.data
        if event.type is EventType.CANDIDATE_PROPOSED and data.get("id") == cid:
            return parent
        if (
            event.type is EventType.CANDIDATE_REVIEWED
            and data.get("status") == "keep"
            or event.type is EventType.DECISION
            and data.get("decision") == "override:keep"
        ):
            parent = data.get("id")
    return parent


def changes(baseline: dict, before: dict, after: dict) -> dict[str, tuple]:
    """``name -> (old, new)`` for every arg whose effective value differs (unchanged ones left out)."""
    old_config, new_config = {**baseline, **before}, {**baseline, **after}
    return {
        name: (old_config.get(name), new_config.get(name))
        for name in sorted(set(old_config) | set(new_config))
        if old_config.get(name) != new_config.get(name)
    }
