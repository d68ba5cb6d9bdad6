"""The campaign's record of its interpreter environment and workspace branches, and its check.

Recorded in ``campaign.json`` at start (``fingerprint``), checked before each candidate is
proposed. afr's own moves of the campaign branch (a keep, a checkpoint) update the record;
other campaigns' ``autoresearch/*`` branches move under their own engines and are not
compared. Any other difference (a new ``.pth``, a changed ``sys.path``, ``main`` rewritten)
stops the campaign with a one-line reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from engine.run.integrity import Fingerprint, fingerprint_problem, take_fingerprint

META_KEY = "fingerprint"
OTHER_CAMPAIGNS = "refs/heads/autoresearch/"


def _own_view(fp: Fingerprint, branch: str) -> Fingerprint:
    """``fp`` without the branches of other campaigns (their engines move them)."""
    own = f"refs/heads/{branch}"
    heads = {ref: sha for ref, sha in fp.heads.items() if ref == own or not ref.startswith(OTHER_CAMPAIGNS)}
    return replace(fp, heads=heads)


class EnvironmentCheck:
    def __init__(self, root: Path, branch: str, recorded: Fingerprint | None = None) -> None:
        self.root, self.branch = Path(root), branch
        self.recorded = recorded or _own_view(take_fingerprint(self.root), branch)

    @classmethod
    def from_meta(cls, root: Path, branch: str, meta: dict) -> EnvironmentCheck:
        """The record in ``campaign.json``; a campaign started before it existed records now."""
        text = meta.get(META_KEY)
        return cls(root, branch, Fingerprint.from_json(json.dumps(text)) if text else None)

    def to_meta(self) -> dict:
        return json.loads(self.recorded.to_json())

    def moved(self, commit: str) -> None:
        """afr itself moved the campaign branch to ``commit``."""
        self.recorded = self.recorded.with_head(self.branch, commit)

    def problem(self) -> str | None:
        return fingerprint_problem(self.recorded, _own_view(take_fingerprint(self.root), self.branch))


def resumed_check(root: Path, branch: str, meta: dict) -> EnvironmentCheck:
    """A resumed engine: the interpreter must still be the one recorded at start; ``sys.path``
    (another process) and the branches (the human may move them while no engine runs) are
    recorded afresh."""
    check = EnvironmentCheck.from_meta(root, branch, meta)
    now = _own_view(take_fingerprint(check.root), branch)
    check.recorded = replace(check.recorded, sys_path=now.sys_path, heads=now.heads)
    return check
