"""What a slow proposer costs a 2-slot campaign: 20 s per proposal (an LLM's latency) against none.

The same 6 Heart candidates (the fixed scripted sequence of benchmarks/campaign_bench.py, full
budget, confirmation off) run twice back to back in fresh workspaces: once with the proposer as
it is, once wrapped in a test double that sleeps 20 s before each proposal. Prints both wall
times, the added wall time in % (target <= 10%) and the load before and after each.

The floor. The slots start proposing ahead only once the baseline is scored (every later
candidate is compared with it), so two proposals can never overlap a run: the baseline's own
(nothing runs before it) and the second one (the baseline has just been reviewed and both slots
are idle). That is 2 x the delay however fast the jobs are. After that the proposer prepares one
candidate ahead while the slots run, so a delay below a slot's candidate time divided by the
number of slots costs nothing more; above it, the proposer is the bottleneck and each candidate
costs the delay instead.

    python benchmarks/slow_proposer.py [DELAY_SECONDS] [CANDIDATES]     (defaults: 20, 6)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from campaign_bench import (  # noqa: E402
    PROFILE,
    SequenceProposer,
    SlowProposer,
    describe,
    load,
    run_campaign,
    scripted_sequence,
)

from engine.profile import load_profile  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402

TARGET_PERCENT = 10.0
SLOTS = 2


def main() -> None:
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    specs = scripted_sequence(load_profile(bundle_root(), PROFILE), count)
    print(f"{PROFILE}, {count} candidates, {SLOTS} slots, proposer delay {delay:.0f} s vs none")
    print(f"start: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="afr-slow-") as scratch:
        fast = run_campaign(Path(scratch), "instant", SequenceProposer(specs), count, SLOTS)
        print(describe(fast), flush=True)
        slow = run_campaign(Path(scratch), "slow", SlowProposer(SequenceProposer(specs), delay), count, SLOTS)
        print(describe(slow), flush=True)
    added = slow.wall_seconds - fast.wall_seconds
    percent = 100 * added / fast.wall_seconds
    floor = 2 * delay
    print(
        f"the {delay:.0f} s proposer added {added:.1f} s ({percent:+.1f}%) to {fast.wall_seconds:.1f} s; "
        f"floor {floor:.0f} s ({100 * floor / fast.wall_seconds:.1f}%: the baseline's proposal and the one "
        f"after its review overlap no run); all {count} proposals in series would add {count * delay:.0f} s "
        f"({100 * count * delay / fast.wall_seconds:.1f}%); target <= {TARGET_PERCENT:.0f}%: "
        f"{'met' if percent <= TARGET_PERCENT else 'missed'}"
    )


if __name__ == "__main__":
    main()
