"""What a slow proposer costs a 2-slot campaign: 20 s per proposal (an LLM's latency) against none.

The same 6 Heart candidates (the fixed scripted sequence of benchmarks/campaign_bench.py, full
budget, confirmation off) run back to back in fresh workspaces: with the proposer as it is,
then wrapped in a test double that sleeps 20 s before each proposal, once making one call at a
time (as afr's external-agent proposer) and once one call per slot at once (as afr's LLM
proposer, whose calls share no state). Prints the wall times, the added wall time in %
(target <= 10%) and the load before and after each.

Wall times on a shared machine swing with its load, so it also prints what does not: the
slot-seconds with no candidate running before the last candidate started (from the journal).

The floor, printed: the baseline needs no proposal (an LLM proposer makes no call for it), but
the first candidate beside it waits one proposal, so the other slot idles one delay at the
start; when a candidate runs for less than ``slots x delay``, a one-call-at-a-time proposer
also bounds the campaign (its proposals take ``(candidates - 1) x delay`` in series).
``--untuned`` runs NVFlare's default knobs instead of the lean job (candidates about three
times longer, as when the 10% target was set).

    python benchmarks/slow_proposer.py [DELAY_SECONDS] [CANDIDATES] [--untuned]   (defaults: 20, 6)
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
    positional = [a for a in sys.argv[1:] if not a.startswith("--")]
    lean = "--untuned" not in sys.argv
    delay = float(positional[0]) if positional else 20.0
    count = int(positional[1]) if len(positional) > 1 else 6
    specs = scripted_sequence(load_profile(bundle_root(), PROFILE), count)
    jobs = "lean jobs" if lean else "untuned jobs (NVFlare's defaults)"
    print(f"{PROFILE}, {count} candidates, {SLOTS} slots, {jobs}, proposer delay {delay:.0f} s vs none")
    print(f"start: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="afr-slow-") as scratch:
        fast = run_campaign(Path(scratch), "instant", SequenceProposer(specs), count, SLOTS, lean)
        print(describe(fast), flush=True)
        slow = {}
        for label, concurrent in (("serial", False), ("concurrent", True)):
            proposer = SlowProposer(SequenceProposer(specs), delay, concurrent=concurrent)
            slow[label] = run_campaign(Path(scratch), f"slow-{label}", proposer, count, SLOTS, lean)
            print(describe(slow[label]), flush=True)
    start_floor = delay * (SLOTS - 1) / SLOTS
    serial = (count - 1) * delay
    per_candidate = fast.wall_seconds * SLOTS / count  # a slot's time per candidate, instant proposer
    print(
        f"floor: the first candidate beside the baseline waits one proposal, {start_floor:.0f} s per slot "
        f"({100 * start_floor / fast.wall_seconds:.1f}% of {fast.wall_seconds:.0f} s); a slot's candidate takes "
        f"{per_candidate:.0f} s, a one-call-at-a-time proposer {delay * SLOTS:.0f} s per round of slots "
        f"({serial:.0f} s for its {count - 1} proposals in series)"
    )
    for label, run in slow.items():
        added = run.wall_seconds - fast.wall_seconds
        percent = 100 * added / fast.wall_seconds
        # The wall times swing with the machine's load; the slots' idle time before the last start
        # does not depend on how fast the jobs ran, so it isolates what the proposer cost.
        idle_added = (run.idle_slot_seconds - fast.idle_slot_seconds) / SLOTS
        idle_percent = 100 * idle_added / fast.wall_seconds
        print(
            f"{label}: the {delay:.0f} s proposer added {added:+.1f} s ({percent:+.1f}%) of wall to "
            f"{fast.wall_seconds:.1f} s; slots idle {run.idle_slot_seconds:.0f} vs {fast.idle_slot_seconds:.0f} "
            f"slot-s, i.e. {idle_added:+.1f} s of wall per slot ({idle_percent:+.1f}%); target <= "
            f"{TARGET_PERCENT:.0f}%: {'met' if percent <= TARGET_PERCENT else 'missed'} by the wall, "
            f"{'met' if idle_percent <= TARGET_PERCENT else 'missed'} by the idle time"
        )


if __name__ == "__main__":
    main()
