"""What a slow proposer costs a 2-slot campaign: 20 s per proposal (an LLM's latency) against none.

The same 6 Heart candidates (the fixed scripted sequence of benchmarks/campaign_bench.py, full
budget, confirmation off) run twice back to back in fresh workspaces: once with the proposer as
it is, once wrapped in a test double that sleeps 20 s before each proposal. Prints both wall
times, the added wall time in % (target <= 10%) and the load before and after each.

Wall times on a shared machine swing with its load, so it also prints what does not: the
slot-seconds with no candidate running before the last candidate started (from the journal).

The floor. The baseline's own proposal can never overlap a run (nothing runs before it): one
delay, however fast the jobs are. While the baseline runs, the proposer prepares one candidate
for each other slot (they start once the baseline is scored, since every later candidate is
compared with it), and afterwards it works one candidate ahead of the slots. So a delay below
a slot's candidate time divided by the number of slots costs nothing more; above it, the
proposer is the bottleneck and each candidate costs the delay instead.

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
    # The wall times swing with the machine's load; the slots' idle time before the last start
    # does not depend on how fast the jobs ran, so it isolates what the proposer cost.
    idle_added = (slow.idle_slot_seconds - fast.idle_slot_seconds) / SLOTS
    idle_percent = 100 * idle_added / fast.wall_seconds
    print(
        f"wall: the {delay:.0f} s proposer added {added:+.1f} s ({percent:+.1f}%) to {fast.wall_seconds:.1f} s "
        f"(both runs' job times differ with the load: see above)\n"
        f"slots idle: {slow.idle_slot_seconds:.0f} vs {fast.idle_slot_seconds:.0f} slot-s, i.e. {idle_added:+.1f} s "
        f"of wall per slot ({idle_percent:+.1f}% of the instant campaign's wall)\n"
        f"floor {delay:.0f} s ({100 * delay / fast.wall_seconds:.1f}%): the baseline's own proposal overlaps "
        f"no run; every later one overlaps the runs while the proposer keeps up with the slots. "
        f"All {count} proposals in series would add {count * delay:.0f} s "
        f"({100 * count * delay / fast.wall_seconds:.1f}%). Target <= {TARGET_PERCENT:.0f}%: "
        f"{'met' if idle_percent <= TARGET_PERCENT else 'missed'} (by the idle time)"
    )


if __name__ == "__main__":
    main()
