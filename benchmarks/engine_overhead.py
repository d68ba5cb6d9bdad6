"""The engine's own time per candidate: everything but the NVFlare job.

For each candidate of a campaign, ``engine_seconds`` (proposal, git worktree and commit,
validation, review, ledger and journal writes) comes from ``candidates.jsonl``; the share
is engine / (engine + job). With no campaign given, runs a fresh 5-candidate smoke campaign
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

from engine.ledger import Ledger  # noqa: E402


def fresh_campaign(scratch: Path) -> Path:
    workspace = scratch / "ws"
    afr = [sys.executable, "-m", "engine.cli"]
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


def report(directory: Path) -> None:
    records = [
        r for r in Ledger(directory).latest_candidates().values() if "engine_seconds" in r.get("timings", {})
    ]
    if not records:
        raise SystemExit(f"{directory}: no finished candidates with timings")
    print(f"{'candidate':<10}{'engine s':>10}{'job s':>10}{'share':>9}")
    engine, shares = [], []
    for record in sorted(records, key=lambda r: r["id"]):
        seconds = record["timings"]["engine_seconds"]
        job = record.get("runtime_seconds", 0.0)
        share = seconds / (seconds + job) if seconds + job else 0.0
        engine.append(seconds)
        shares.append(share)
        print(f"{record['id']:<10}{seconds:>10.3f}{job:>10.1f}{100 * share:>8.2f}%")
    mean, worst = statistics.mean(engine), max(engine)
    print(
        f"mean engine time {mean:.3f} s (max {worst:.3f} s), mean share {100 * statistics.mean(shares):.2f}% "
        f"(max {100 * max(shares):.2f}%); targets <= 1 s and <= 3%: "
        f"{'met' if mean <= 1 and statistics.mean(shares) <= 0.03 else 'MISSED'}"
    )


def main() -> None:
    if len(sys.argv) > 1:
        report(Path(sys.argv[1]))
        return
    with tempfile.TemporaryDirectory(prefix="afr-overhead-") as scratch:
        report(fresh_campaign(Path(scratch)))


if __name__ == "__main__":
    main()
