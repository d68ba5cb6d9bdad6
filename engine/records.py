"""What the ledger says about one candidate: its ``candidates.jsonl`` record and row labels."""

from __future__ import annotations

import time

from engine.ledger import ResultRow
from engine.profile import Profile
from engine.proposers.base import CandidateSpec
from engine.runner import RunResult


def candidate_record(
    candidate: dict,
    status: str,
    profile: Profile,
    proposer: str,
    hashes: dict[str, str],
    result: RunResult | None = None,
    error: str = "",
    human: dict | None = None,
) -> dict:
    """The final ``candidates.jsonl`` object: provenance, validation, timings, outcome."""
    spec: CandidateSpec = candidate["spec"]
    now = time.time()
    record = {
        "id": candidate["id"],
        "status": status,
        "parent": candidate["parent"],
        "commit": candidate.get("commit"),
        "args": spec.args,
        "arg_changes": {k: [profile.baseline.get(k), v] for k, v in spec.args.items()},
        "edited_files": candidate.get("edited_files", []),
        "proposer": proposer,
        "target": spec.target,
        "description": spec.description,
        "source_refs": spec.source_refs,
        "telemetry": spec.telemetry,
        "validation": candidate.get("validation", {}),
        "protected_hashes": hashes,
        "human": human or candidate.get("human"),
        "error": error or (result.error if result else ""),
        "timings": {"proposed": candidate["proposed"], "started": candidate.get("started"), "finished": now},
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
        # Everything but the NVFlare job: proposing, git, validation, review, ledger.
        record["timings"]["engine_seconds"] = max(0.0, now - candidate["proposed"] - result.runtime_seconds)
        # Inside the NVFlare job, from its log (engine/run_phases.py); None where not reached.
        record["timings"].update(
            nvflare_startup_seconds=result.startup_seconds,
            rounds_seconds=result.rounds_seconds,
            final_eval_seconds=result.final_eval_seconds,
            shutdown_seconds=result.shutdown_seconds,
        )
        record["round_metrics"] = result.round_metrics
    return record


def budget_label(profile: Profile, smoke: bool) -> str:
    budget = profile.budget
    rounds = profile.smoke.get("num_rounds", budget.num_rounds) if smoke else budget.num_rounds
    return f"{'smoke:' if smoke else ''}clients={budget.n_clients};rounds={rounds}"


def best_summary(rows: list[ResultRow], maximize: bool) -> dict | None:
    """Baseline and best of the scored, non-crash rows (for events and views)."""
    scored = [r for r in rows if r.score is not None and r.status not in ("crash", "literature")]
    if not scored:
        return None
    best = max(scored, key=lambda r: r.score if maximize else -r.score)
    return {
        "score": best.score,
        "description": best.description,
        "artifacts": best.artifacts,
        "baseline": scored[0].score,
    }
