"""Campaign throughput with one run slot against two, over the same 8 Heart candidates.

Both campaigns run the same fixed scripted sequence (benchmarks/campaign_bench.py) at the full
budget (15 rounds), with confirmation off so each runs exactly 8 jobs, back to back in this one
invocation in fresh workspaces. Prints each campaign's wall time, candidates per hour, where its
time went (as `afr status` says it), the ratio of the two rates (target >= 1.5x on 2 cores) and
the load average before and after each: on a shared machine the load decides the figures.

    python benchmarks/slot_throughput.py [CANDIDATES]     (default: 8)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from campaign_bench import PROFILE, SequenceProposer, describe, load, run_campaign, scripted_sequence  # noqa: E402

from engine.profile import load_profile  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402

TARGET = 1.5


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    specs = scripted_sequence(load_profile(bundle_root(), PROFILE), count)
    print(f"{PROFILE}, {count} candidates at the full budget: " + "; ".join(s.description for s in specs))
    print(f"start: {load()}", flush=True)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="afr-slots-") as scratch:
        for width in (1, 2):
            runs[width] = run_campaign(Path(scratch), f"{width}slot", SequenceProposer(specs), count, width)
            print(describe(runs[width]), flush=True)
    one, two = runs[1], runs[2]
    ratio = two.per_hour / one.per_hour
    same = "identical" if one.scores == two.scores else "DIFFERENT"
    print(
        f"two slots: {ratio:.2f}x the throughput of one ({two.per_hour:.1f} vs {one.per_hour:.1f} candidates/hour; "
        f"wall {two.wall_seconds:.0f} s vs {one.wall_seconds:.0f} s); scores {same}; "
        f"target >= {TARGET}x: {'met' if ratio >= TARGET else 'missed'}"
    )


if __name__ == "__main__":
    main()
