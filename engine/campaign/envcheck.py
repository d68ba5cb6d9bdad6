"""A campaign's trusted scoring path and its record of the interpreter and workspace branches.

``attach`` gives a starting or resumed campaign both. The environment record (a
``Fingerprint``) is kept in ``campaign.json`` by the campaign's first engine and checked
before each candidate is proposed. afr's own moves of the campaign branch (a keep, a
checkpoint, a human override) update the record; other campaigns' ``autoresearch/*``
branches move under their own engines and are not compared. Any other difference (a new
``.pth``, a changed ``sys.path``, ``main`` rewritten) stops the campaign with a one-line reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from engine.run.integrity import Fingerprint, fingerprint_problem, take_fingerprint
from engine.run.trusted import TrustedScoring

META_KEY = "fingerprint"
OTHER_CAMPAIGNS = "refs/heads/autoresearch/"


def _own_view(fp: Fingerprint, branch: str) -> Fingerprint:
    """``fp`` without the branches of other campaigns (their engines move them)."""
    own = f"refs/heads/{branch}"
    heads = {ref: sha for ref, sha in fp.heads.items() if ref == own or not ref.startswith(OTHER_CAMPAIGNS)}
    # Byte-code caches change when an unsandboxed job first imports a module; not a change of code.
    listing = {name: mtime for name, mtime in fp.site_listing.items() if not name.endswith("/__pycache__")}
    return replace(fp, heads=heads, site_listing=listing)


class EnvironmentCheck:
    def __init__(self, root: Path, branch: str, recorded: Fingerprint | None = None) -> None:
        self.root, self.branch = Path(root), branch
        self.recorded = recorded or _own_view(take_fingerprint(self.root), branch)

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
    recorded = Fingerprint.from_json(json.dumps(meta[META_KEY]))
    now = _own_view(take_fingerprint(root), branch)
    return EnvironmentCheck(root, branch, replace(recorded, sys_path=now.sys_path, heads=now.heads))


def accept_environment(root: Path, directory: Path, branch: str) -> str | None:
    """Record the present interpreter environment as the campaign's (``afr resume --accept-environment``).

    Returns what differed from the old record (None when nothing did); the old record's
    difference and the time are kept in ``campaign.json`` under ``environment_accepted``.
    """
    path = Path(directory) / "campaign.json"
    meta = json.loads(path.read_text())
    if META_KEY not in meta:
        return None
    problem = resumed_check(root, branch, meta).problem()
    if problem is None:
        return None
    meta[META_KEY] = json.loads(_own_view(take_fingerprint(Path(root)), branch).to_json())
    meta.setdefault("environment_accepted", []).append({"at": time.time(), "was": problem})
    path.write_text(json.dumps(meta, indent=2))
    return problem


def attach(campaign) -> None:
    """Give a starting or resumed ``Campaign`` its trusted scoring path (``campaign.trusted``) and
    environment record (``campaign.envcheck``). The first engine of a campaign records the
    fingerprint and the sandbox in ``campaign.json``; a resumed one checks against that record."""
    path = campaign.dir / "campaign.json"
    meta = json.loads(path.read_text())
    campaign.trusted = TrustedScoring.for_campaign(campaign.root, campaign.dir, campaign.profile)
    if META_KEY in meta:
        campaign.envcheck = resumed_check(campaign.root, campaign.repo.branch, meta)
        return
    campaign.envcheck = EnvironmentCheck(campaign.root, campaign.repo.branch)
    meta.update({"sandbox": campaign.trusted.sandbox, META_KEY: campaign.envcheck.to_meta()})
    path.write_text(json.dumps(meta, indent=2))


def moved(campaign, commit: str) -> str:
    """afr itself moved the campaign branch (a keep, a checkpoint, a human override)."""
    if getattr(campaign, "envcheck", None) is not None:
        campaign.envcheck.moved(commit)
    return commit


def stop_on_environment_change(campaign) -> bool:
    """Stop ``campaign`` when its check fails: queued candidates are not run, running ones
    are reviewed, the STOPPED event carries the one-line reason."""
    problem = campaign.envcheck.problem() if getattr(campaign, "envcheck", None) else None
    if not problem:
        return False
    campaign.stop_reason = f"environment check: {problem}"[:300]
    campaign.stop_requested = True  # the loop's stop path: queued candidates are not run
    return True
