"""The typed candidate as it travels through a campaign, and the record it leaves behind.

A ``Candidate`` is born from a proposer's ``CandidateSpec`` when the campaign names it
(``c007``), gains a worktree, validation results and a commit, waits for approval, runs and is
reviewed. Its fields are the vocabulary of its ``candidates.jsonl`` record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.agent.base import CandidateSpec
from engine.profile import Profile
from engine.run.runner import RunResult


@dataclass
class Candidate:
    id: str
    spec: CandidateSpec
    parent: str  # the commit it was proposed against
    proposed: float  # when it was proposed (epoch seconds)
    worktree: Path | None = None
    edited_files: list[str] = field(default_factory=list)
    validation: dict[str, str] = field(default_factory=dict)  # check name -> "ok" or the reason
    commit: str = ""  # its own commit, or the parent's for an args-only candidate
    diff: str = ""  # against the parent: what the human approves
    started: float | None = None
    token: str | None = None  # names the run's processes (see run.runner.processes_of_run)
    human: dict | None = None  # {"decision": ..., "note": ...}

    def record(
        self,
        status: str,
        profile: Profile,
        proposer: str,
        hashes: dict[str, str],
        result: RunResult | None = None,
        error: str = "",
        human: dict | None = None,
    ) -> dict:
        """The final ``candidates.jsonl`` object: provenance, validation, timings, outcome."""
        spec = self.spec
        now = time.time()
        record = {
            "id": self.id,
            "status": status,
            "parent": self.parent,
            "commit": self.commit or None,
            "args": spec.args,
            "arg_changes": {k: [profile.baseline.get(k), v] for k, v in spec.args.items()},
            "edited_files": self.edited_files,
            "proposer": proposer,
            "target": spec.target,
            "description": spec.description,
            "source_refs": spec.source_refs,
            "mechanisms": spec.mechanisms,
            "telemetry": spec.telemetry,
            "validation": self.validation,
            "protected_hashes": hashes,
            "human": human or self.human,
            "error": error or (result.error if result else ""),
            "timings": {"proposed": self.proposed, "started": self.started, "finished": now},
        }
        if result is not None:
            record.update(
                score=result.score,
                per_site=result.per_site,
                run_status=result.status,
                runtime_seconds=result.runtime_seconds,
                log_path=result.log_path,
                log_tail=result.log_tail[-20:] if result.status != "ok" else [],
            )
            # What scored it: the sandbox the job ran in and afr's evaluator (trusted runs only).
            record.update(sandbox=getattr(result, "sandbox", "none"), evaluator=getattr(result, "evaluator", {}))
            if getattr(result, "placement", None):  # where it ran (a Ray node), when not on this machine
                record["placement"] = result.placement
            # Everything but the NVFlare job: proposing, git, validation, review, ledger.
            record["timings"]["engine_seconds"] = max(0.0, now - self.proposed - result.runtime_seconds)
            # Inside the NVFlare job, from its log (engine/run/phases.py); None where not reached.
            record["timings"].update(
                nvflare_startup_seconds=result.startup_seconds,
                rounds_seconds=result.rounds_seconds,
                final_eval_seconds=result.final_eval_seconds,
                shutdown_seconds=result.shutdown_seconds,
            )
            record["round_metrics"] = result.round_metrics
        return record
