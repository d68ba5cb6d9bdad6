"""A profile's baseline over its repeat seeds: mean and sample standard deviation of the score.

python benchmarks/baseline_seeds.py fed_heart_disease [--seeds 42,43,44,45,46] [--subset full]

``--subset`` is the part of each client's test split scored: "validation" (what a campaign
selects on; the default), "heldout", or "full" (the whole split, as published baselines are).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.profile import load_profile  # noqa: E402
from engine.run.runner import run_job  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--seeds", default=None, help="comma-separated (default: the profile's repeat seeds)")
    parser.add_argument("--subset", choices=["validation", "heldout", "full"], default="validation")
    options = parser.parse_args()
    root = bundle_root()
    profile = load_profile(root, options.profile)
    seeds = [int(s) for s in options.seeds.split(",")] if options.seeds else profile.repeat.seeds
    scores = []
    with tempfile.TemporaryDirectory(prefix="afr-seeds-") as scratch:
        for seed in seeds:
            result = run_job(
                root, profile, {}, Path(scratch) / f"seed{seed}", seed=seed, subset=options.subset
            )
            if result.status != "ok":
                raise SystemExit(f"seed {seed}: {result.status}: {result.error}")
            scores.append(result.score)
            sites = " ".join(f"{s}={v:.3f}" for s, v in result.per_site.items())
            print(f"seed {seed}: {result.score:.4f} ({sites}) {result.runtime_seconds:.0f} s", flush=True)
    print(
        f"{profile.name} baseline ({options.subset} subset) over seeds {seeds}: mean {statistics.mean(scores):.4f} "
        f"sd {statistics.stdev(scores):.4f}"
    )


if __name__ == "__main__":
    main()
