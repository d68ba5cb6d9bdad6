"""What afr's integrity adds to one Fed-Heart-Disease candidate: untrusted vs the full trusted path.

Runs the baseline candidate on a throw-away copy of the bundled tasks, alternating two ways:

- **untrusted**: the candidate's ``job.py`` runs its own recipe, unsandboxed, and the score is
  read from NVFlare's cross-site results (what afr did before issue 12);
- **trusted**: the campaign's path (``run_job(..., trusted=TrustedScoring)``): ``job.py`` only
  exports its job in the sandbox, afr verifies the export, launches it with NVFlare's
  simulator in the sandbox (raw data hidden, per-site views), and afr's evaluator scores the
  final model.

It prints both side by side with the trusted path's parts. The per-site data export runs once
per campaign and evaluation subset, so it is shown apart.

    python benchmarks/integrity_overhead.py [--full] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.guard.validate import protected_hashes  # noqa: E402
from engine.profile import load_profile  # noqa: E402
from engine.run.runner import run_job  # noqa: E402
from engine.run.sandbox import SandboxSpec, detect_sandbox, wrap  # noqa: E402
from engine.run.trusted import TrustedScoring  # noqa: E402
from engine.store.gitsafe import run_git  # noqa: E402
from engine.store.workspace import init_workspace  # noqa: E402

PROFILE = "fed_heart_disease"


def workspace_copy(scratch: Path) -> Path:
    root, _ = init_workspace(scratch / "workspace")  # the bundled tasks, profiles and program.md, committed
    return root


PHASES = ("startup", "rounds", "final_eval")


def phases(result) -> dict[str, float]:
    """Where the NVFlare job's time went (engine/run/phases.py); untrusted, start-up includes job.py's imports."""
    return {
        "startup": result.startup_seconds or 0.0,
        "rounds": result.rounds_seconds or 0.0,
        "final_eval": result.final_eval_seconds or 0.0,
    }


def untrusted(root: Path, profile, scratch: Path, smoke: bool) -> dict[str, float]:
    started = time.monotonic()
    result = run_job(root, profile, {}, scratch / f"plain-{uuid.uuid4().hex[:6]}", smoke=smoke)
    wall = time.monotonic() - started
    if result.status != "ok":
        raise SystemExit(f"error: the untrusted run failed: {result.error}")
    return {"wall": wall, "job": result.runtime_seconds, "score": result.score, **phases(result)}


def trusted(root: Path, profile, scratch: Path, scoring: TrustedScoring, smoke: bool) -> dict[str, float]:
    """One candidate on the trusted path; its wall time and the parts the run records."""
    started = time.monotonic()
    result = run_job(
        root, profile, {}, scratch / f"trusted-{uuid.uuid4().hex[:6]}", smoke=smoke, trusted=scoring
    )
    wall = time.monotonic() - started
    if result.status != "ok":
        raise SystemExit(f"error: the trusted run failed: {result.error}")
    facts = result.evaluator
    export, verify, evaluator = facts["export_seconds"], facts["verify_seconds"], facts["seconds"]
    return {
        "wall": wall,
        "export": export,
        "verify": verify,
        "job": result.runtime_seconds - export,  # the launched NVFlare run, start to early return
        "evaluator": evaluator,
        "score": result.score,
        **phases(result),
    }


def sandbox_startup(times: int = 5) -> float:
    """Median wall time of an empty command in the job's sandbox: the sandbox's own cost."""
    spec = SandboxSpec(workdir=Path("/"))
    seconds = []
    for _ in range(times):
        command = wrap(["/bin/true"], spec)
        started = time.monotonic()
        subprocess.run(command.argv, env=command.env, cwd=command.cwd, check=True)
        seconds.append(time.monotonic() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--full", action="store_true", help="the profile's full budget instead of the smoke one"
    )
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two paths this many times")
    options = parser.parse_args()
    if detect_sandbox() != "bwrap":
        raise SystemExit("error: bubblewrap is not usable here; nothing to compare")
    smoke = not options.full
    with tempfile.TemporaryDirectory(prefix="afr-integrity-") as tmp:
        scratch = Path(tmp)
        root = workspace_copy(scratch)
        profile = load_profile(root, PROFILE)
        base = run_git(root, "rev-parse", "HEAD").stdout.decode().strip()
        (scratch / "campaign").mkdir()
        scoring = TrustedScoring(root, scratch / "campaign", profile, base, protected_hashes(root, profile))
        started = time.monotonic()
        scoring.site_data("validation")  # once per campaign: the pinned bridge writes views and scored inputs
        data_seconds = time.monotonic() - started
        plain, runs, scores = [], [], set()
        for _ in range(options.repeat):
            plain.append(untrusted(root, profile, scratch, smoke))
            runs.append(trusted(root, profile, scratch, scoring, smoke))
            scores.add((round(plain[-1]["score"], 6), round(runs[-1]["score"], 6)))
    startup = sandbox_startup()

    def median(rows: list[dict], name: str) -> float:
        return statistics.median(row[name] for row in rows)

    budget = "full" if options.full else "smoke"
    print(
        f"Fed-Heart-Disease baseline, {budget} budget, median of {options.repeat} run(s) each, "
        f"sandbox {detect_sandbox()}, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(f"{'':46}{'untrusted':>12}{'trusted':>12}")
    print(f"{'job.py exports its job (sandboxed) (s)':46}{'-':>12}{median(runs, 'export'):12.2f}")
    print(f"{'afr verifies the export (s)':46}{'-':>12}{median(runs, 'verify'):12.3f}")
    print(
        f"{'NVFlare job: job.py | afr launch, sandboxed (s)':46}{median(plain, 'job'):12.2f}{median(runs, 'job'):12.2f}"
    )
    for name, label in zip(PHASES, ("start-up to first round", "rounds", "final evaluation"), strict=True):
        print(f"{'  ' + label + ' (s)':46}{median(plain, name):12.2f}{median(runs, name):12.2f}")
    print(f"{'trusted evaluator, after the job (s)':46}{'-':>12}{median(runs, 'evaluator'):12.2f}")
    print(f"{'candidate wall time (s)':46}{median(plain, 'wall'):12.2f}{median(runs, 'wall'):12.2f}")
    print(f"{'data export, once per campaign (s)':46}{'-':>12}{data_seconds:12.2f}")
    print(f"{'bwrap start-up, /bin/true (s)':46}{'-':>12}{startup:12.3f}")
    walls = [" ".join(f"{row['wall']:.1f}" for row in rows) for rows in (plain, runs)]
    print(f"runs (untrusted | trusted): {walls[0]} | {walls[1]}")
    # Each pair ran back to back: on a shared machine the paired differences say more than the medians.
    pairs = [
        trusted_run["wall"] - plain_run["wall"] for plain_run, trusted_run in zip(plain, runs, strict=True)
    ]
    print(f"paired differences, trusted - untrusted (s): {' '.join(f'{d:+.1f}' for d in pairs)}")
    extra = statistics.median(pairs)
    print(
        f"the trusted path adds {extra:+.2f} s: {extra / median(plain, 'wall') * 100:+.1f}% of the untrusted candidate"
    )
    print(f"scores (untrusted, trusted): {sorted(scores)}")


if __name__ == "__main__":
    main()
