"""Wall time of one candidate per bundled task, split into NVFlare start-up and per-round cost.

Runs each profile's baseline job twice through the engine's runner: once with one round and
once with the profile's full rounds. With T(r) = startup + r * per_round,
per_round = (T(R) - T(1)) / (R - 1) and startup = T(1) - per_round.

    python benchmarks/candidate_time.py [PROFILE ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.profile import load_profile  # noqa: E402
from engine.run.runner import run_job  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402

TARGETS = {"fed_heart_disease": 66.0}  # seconds per candidate on a 2-core CPU


def time_profile(root: Path, name: str, scratch: Path) -> dict:
    profile = load_profile(root, name)
    rounds = profile.budget.num_rounds
    one = profile.model_copy(update={"budget": profile.budget.model_copy(update={"num_rounds": 1})})
    short = run_job(root, one, {}, scratch / f"{name}-1round")
    full = run_job(root, profile, {}, scratch / f"{name}-full")
    for result in (short, full):
        if result.status != "ok":
            raise SystemExit(f"{name}: run failed ({result.error}); log {result.log_path}")
    per_round = (full.runtime_seconds - short.runtime_seconds) / (rounds - 1)
    return {
        "profile": name,
        "rounds": rounds,
        "clients": profile.budget.n_clients,
        "wall_s": full.runtime_seconds,
        "startup_s": short.runtime_seconds - per_round,
        "per_round_s": per_round,
        "score": full.score,
    }


def main() -> None:
    root = bundle_root()
    names = sys.argv[1:] or ["fed_heart_disease", "leaf_synthetic"]
    with tempfile.TemporaryDirectory(prefix="afr-bench-") as scratch:
        rows = [time_profile(root, name, Path(scratch)) for name in names]
    print(
        f"{'profile':<20}{'clients':>8}{'rounds':>7}{'wall s':>9}{'startup s':>11}{'s/round':>9}{'score':>9}  target"
    )
    for row in rows:
        target = TARGETS.get(row["profile"])
        verdict = (
            "" if target is None else f"<= {target:.0f} s: {'met' if row['wall_s'] <= target else 'MISSED'}"
        )
        print(
            f"{row['profile']:<20}{row['clients']:>8}{row['rounds']:>7}{row['wall_s']:>9.1f}"
            f"{row['startup_s']:>11.1f}{row['per_round_s']:>9.2f}{row['score']:>9.4f}  {verdict}"
        )


if __name__ == "__main__":
    main()
