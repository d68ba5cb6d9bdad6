"""Where a campaign's time went: totals over its candidates' records, and candidates per hour."""

from __future__ import annotations

import time

# Record timing fields summed into the campaign's totals, in the order a candidate lives them.
PHASES = (
    ("nvflare_startup_seconds", "NVFlare start-up"),
    ("rounds_seconds", "rounds"),
    ("final_eval_seconds", "final evaluation"),
    ("shutdown_seconds", "shutdown"),
    ("engine_seconds", "outside the job (propose, validate, wait for a slot, review)"),
)


def time_totals(records: dict[str, dict], created: float | None, now: float | None = None) -> dict:
    """Seconds per phase over every finished candidate, their run time, the campaign's wall time
    since it was created, and finished candidates per wall hour."""
    finished = [r for r in records.values() if r.get("runtime_seconds") is not None]
    phases = {
        key: round(sum(float((r.get("timings") or {}).get(key) or 0.0) for r in finished), 1)
        for key, _ in PHASES
    }
    wall = max(0.0, (now or time.time()) - created) if created else 0.0
    return {
        "finished": len(finished),
        "run_seconds": round(sum(float(r["runtime_seconds"]) for r in finished), 1),
        "phase_seconds": phases,
        "wall_seconds": round(wall, 1),
        "candidates_per_hour": round(3600 * len(finished) / wall, 2) if wall > 0 else None,
    }


def time_line(totals: dict) -> str:
    """One line for ``afr status``: throughput and the phases that took the time."""
    if not totals.get("finished"):
        return ""
    rate = totals.get("candidates_per_hour")
    parts = [f"{label} {totals['phase_seconds'][key] / 60:.1f} min" for key, label in PHASES]
    head = f"{rate:.1f} candidates/hour" if rate else "time"
    return f"{head}; {totals['run_seconds'] / 60:.1f} min in jobs: " + ", ".join(parts)
