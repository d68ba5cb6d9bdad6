"""The engine's own time per candidate: everything but the NVFlare job.

Per candidate, from the journal: the cycle from the previous candidate's review (or the
campaign's start) to this one's review, minus the job's own runtime. That covers proposing,
the git worktree and commit, validation, review, ledger, journal and checkpoint writes and
the watchdog. The share is engine / cycle. With no campaign given, runs a fresh 5-candidate smoke campaign
on ``fed_heart_disease`` in a temporary workspace.

    python benchmarks/engine_overhead.py [CAMPAIGN_DIR]
Targets: <= 1 s and <= 3% per candidate.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.control.events import EventType  # noqa: E402
from engine.store.journal import Journal  # noqa: E402
from engine.store.ledger import Ledger  # noqa: E402


def fresh_campaign(scratch: Path) -> Path:
    workspace = scratch / "ws"
    afr = [sys.executable, "-m", "afr.cli"]
    subprocess.run([*afr, "init", str(workspace)], check=True, capture_output=True)
    subprocess.run(
        [
            *afr,
            "run",
            "--profile",
            "fed_heart_disease",
            "--headless",
            "--smoke",
            "--max-candidates",
            "5",
            "--tag",
            "overhead-20261122",
        ],
        cwd=workspace,
        check=True,
        capture_output=True,
    )
    return workspace / ".afr" / "campaigns" / "overhead-20261122"


def cycles(directory: Path) -> list[tuple[str, float, float]]:
    """(candidate, engine seconds, job seconds) for each reviewed candidate of one engine session."""
    records = Ledger(directory).latest_candidates()
    out, last = [], None
    for event in Journal(directory / "journal.jsonl").events():
        if event.type in (EventType.CAMPAIGN_STARTED, EventType.CAMPAIGN_RESUMED):
            last = event.ts
        elif event.type is EventType.CANDIDATE_REVIEWED and last is not None:
            record = records.get(event.data["id"], {})
            job = float(record.get("runtime_seconds") or 0.0)
            if record.get("error") != "interrupted":
                out.append((event.data["id"], max(0.0, event.ts - last - job), job))
            last = event.ts
    return out


def report(directory: Path) -> None:
    rows = cycles(directory)
    if not rows:
        raise SystemExit(f"{directory}: no reviewed candidates")
    print(f"{'candidate':<10}{'engine s':>10}{'job s':>10}{'share':>9}")
    for cid, engine, job in rows:
        print(f"{cid:<10}{engine:>10.3f}{job:>10.1f}{100 * engine / (engine + job):>8.2f}%")
    engines = [engine for _, engine, _ in rows]
    shares = [engine / (engine + job) for _, engine, job in rows]
    mean, share = statistics.mean(engines), statistics.mean(shares)
    print(
        f"mean engine time {mean:.3f} s (max {max(engines):.3f} s), mean share {100 * share:.2f}% "
        f"(max {100 * max(shares):.2f}%); targets <= 1 s and <= 3%: {'met' if mean <= 1 and share <= 0.03 else 'MISSED'}"
    )


def main() -> None:
    if len(sys.argv) > 1:
        report(Path(sys.argv[1]))
        return
    with tempfile.TemporaryDirectory(prefix="afr-overhead-") as scratch:
        report(fresh_campaign(Path(scratch)))


if __name__ == "__main__":
    main()
