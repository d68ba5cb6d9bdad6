"""The agent's read-only view of a campaign's evidence: records, diffs, per-round metrics, job logs.

Every answer is bounded (the model's context is finite) and passed through ``redact``. What
would let the agent select on data it must not see is withheld: held-out rows of
``evidence.tsv`` (the held-out check is only honest if nothing was selected on it), protected
hashes, and long numeric arrays in logs (a client could print the labels it was scored on).
Used by the LLM agent's tools (``tools.py``) and by ``afr tool`` for external coding agents.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import git

from engine.agent.redaction import redact
from engine.store.gitsafe import NO_EXTERNAL_DIFF
from engine.store.ledger import Ledger
from engine.store.workspace import safe_repo

CANDIDATE_ID = re.compile(r"^c\d{3,}$")
MAX_LOG_LINES = 200
DEFAULT_LOG_LINES = 50
MAX_LINE_CHARS = 400
MAX_DIFF_CHARS = 12_000
MAX_ROUNDS = 200
ROUND_LINE = re.compile(r"(?P<site>site-\d+)\s+round\s+(?P<round>\d+):\s*(?P<rest>.*)")
METRIC = re.compile(r"(?P<key>[A-Za-z_][\w.]*)=(?P<value>-?\d+(?:\.\d+)?(?:e-?\d+)?)")
NUMERIC_ARRAY = re.compile(r"(?:-?\d+(?:\.\d+)?[,\s]+){12,}-?\d+(?:\.\d+)?")
HIDDEN_RECORD_KEYS = ("protected_hashes",)


class EvidenceToolError(ValueError):
    """A refused or impossible read; the message goes back to the agent."""


def _scrub(text: str) -> str:
    """Redact secrets and elide long numeric arrays (label or prediction dumps)."""
    return NUMERIC_ARRAY.sub("[numeric array elided]", redact(text))


class EvidenceReader:
    def __init__(self, campaign_dir: Path, root: Path) -> None:
        self.dir = Path(campaign_dir)
        self.root = Path(root)

    def _records(self) -> dict[str, dict]:
        return Ledger(self.dir).latest_candidates() if (self.dir / "candidates.jsonl").exists() else {}

    def _record(self, candidate: str) -> dict:
        candidate = str(candidate).strip()
        if not CANDIDATE_ID.match(candidate):
            raise EvidenceToolError(f"{candidate!r} is not a candidate id such as c007")
        record = self._records().get(candidate)
        if record is None:
            raise EvidenceToolError(f"no finished candidate {candidate} in this campaign")
        return record

    # -- the tools ----------------------------------------------------------------------------------

    def list_candidates(self) -> str:
        rows = [
            {
                "id": cid,
                "status": r.get("status"),
                "score": r.get("score"),
                "target": r.get("target"),
                "description": str(r.get("description", ""))[:160],
                "error": str(r.get("error", ""))[:160],
            }
            for cid, r in self._records().items()
        ][-100:]
        return _scrub(json.dumps(rows))

    def get_candidate(self, candidate: str) -> str:
        record = {k: v for k, v in self._record(candidate).items() if k not in HIDDEN_RECORD_KEYS}
        telemetry = dict(record.get("telemetry") or {})
        if "tool_calls" in telemetry:  # the agent's own past calls: the count is enough here
            telemetry["tool_calls"] = len(telemetry["tool_calls"])
        record["telemetry"] = telemetry
        return _scrub(json.dumps(record, default=str))[:MAX_DIFF_CHARS]

    def get_candidate_diff(self, candidate: str) -> str:
        record = self._record(candidate)
        parent, commit = record.get("parent"), record.get("commit")
        if not commit or commit == parent:
            return f"{candidate} changed no file (args only: {json.dumps(record.get('args') or {})})"
        try:
            diff = safe_repo(self.root).git.diff(parent, commit, *NO_EXTERNAL_DIFF, "--", ".", ":(exclude)results.tsv")
        except git.GitCommandError as error:
            raise EvidenceToolError(f"the diff of {candidate} is not available: {error.stderr.strip()}") from None
        text = _scrub(diff)
        return text if len(text) <= MAX_DIFF_CHARS else text[:MAX_DIFF_CHARS] + "\n[diff truncated]"

    def _log(self, candidate: str) -> Path:
        record = self._record(candidate)
        log = self.dir / "runs" / candidate / "job.log"
        if not log.exists():
            raise EvidenceToolError(
                f"{candidate} has no job log (status {record.get('status')}: it never ran)"
            )
        return log

    def get_job_log(self, candidate: str, lines: int = DEFAULT_LOG_LINES) -> str:
        count = max(1, min(int(lines), MAX_LOG_LINES))
        text = self._log(candidate).read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
        return _scrub("\n".join(line[-MAX_LINE_CHARS:] for line in text)) or "(the log is empty)"

    def get_round_metrics(self, candidate: str) -> str:
        """Per site and round, the metrics the client printed (``site-2 round 3: global_accuracy=...``)."""
        curves: dict[str, list[dict]] = {}
        for line in self._log(candidate).read_text(encoding="utf-8", errors="replace").splitlines():
            match = ROUND_LINE.search(line)
            if not match:
                continue
            metrics = {m["key"]: float(m["value"]) for m in METRIC.finditer(match["rest"])}
            if metrics:
                curves.setdefault(match["site"], []).append({"round": int(match["round"]), **metrics})
        if not curves:
            return f"{candidate}: no per-round metrics in its log"
        per_site = self._record(candidate).get("per_site") or {}
        return json.dumps({"rounds": {s: c[-MAX_ROUNDS:] for s, c in sorted(curves.items())}, "final_per_site": per_site})

    def get_evidence(self) -> str:
        """Repeat rows of ``evidence.tsv``; held-out rows are withheld from the agent."""
        from engine.evidence.runs import EvidenceError, EvidenceLedger

        try:
            rows = EvidenceLedger(self.dir).rows()
        except EvidenceError as error:
            raise EvidenceToolError(str(error)) from None
        shown = [
            {"candidate": r.candidate, "role": r.role, "seed": r.seed, "status": r.status, "score": r.score}
            for r in rows
            if r.subset != "heldout"
        ][-200:]
        withheld = sum(1 for r in rows if r.subset == "heldout")
        note = f"; {withheld} held-out rows withheld" if withheld else ""
        return json.dumps({"rows": shown, "note": f"{len(shown)} repeat rows{note}"})
