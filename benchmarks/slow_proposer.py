"""What a slow proposer costs a 2-slot campaign: 20 s per proposal (an LLM's latency) against none.

The same 6 Heart candidates (the fixed scripted sequence of benchmarks/campaign_bench.py, full
budget, confirmation off) run twice back to back in fresh workspaces: once with the proposer as
it is, once wrapped in a test double that sleeps 20 s before each proposal. Prints both wall
times, the added wall time in % (target <= 10%) and the load before and after each.

Wall times on a shared machine swing with its load, so it also prints what does not: the
slot-seconds with no candidate running before the last candidate started (from the journal).

Two floors, both printed. The baseline needs no proposal (an LLM proposer makes no call for
it), but the first candidate beside it waits one proposal, so the other slots idle one delay
at the start: (slots - 1) / slots x delay per slot. And the proposer is one thread: the
(candidates - 1) proposals take that long in series, so when a candidate runs faster than
delay x slots the proposer, not the scheduling, bounds the campaign. ``--untuned`` runs NVFlare's
default knobs instead of the lean job (candidates about three times longer, as when the 10%
target was set), where the proposer keeps up with the slots.

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
        slow = run_campaign(
            Path(scratch), "slow", SlowProposer(SequenceProposer(specs), delay), count, SLOTS, lean
        )
        print(describe(slow), flush=True)
    added = slow.wall_seconds - fast.wall_seconds
    percent = 100 * added / fast.wall_seconds
    # The wall times swing with the machine's load; the slots' idle time before the last start
    # does not depend on how fast the jobs ran, so it isolates what the proposer cost.
    idle_added = (slow.idle_slot_seconds - fast.idle_slot_seconds) / SLOTS
    idle_percent = 100 * idle_added / fast.wall_seconds
    start_floor = delay * (SLOTS - 1) / SLOTS
    serial = (count - 1) * delay
    per_candidate = fast.wall_seconds * SLOTS / count  # a slot's time per candidate, instant proposer
    bound = "the proposer" if per_candidate < delay * SLOTS else "the slots"
    print(
        f"wall: the {delay:.0f} s proposer added {added:+.1f} s ({percent:+.1f}%) to {fast.wall_seconds:.1f} s "
        f"(both runs' job times differ with the load: see above)\n"
        f"slots idle: {slow.idle_slot_seconds:.0f} vs {fast.idle_slot_seconds:.0f} slot-s, i.e. {idle_added:+.1f} s "
        f"of wall per slot ({idle_percent:+.1f}% of the instant campaign's wall)\n"
        f"floors: the first candidate beside the baseline waits one proposal, {start_floor:.0f} s per slot "
        f"({100 * start_floor / fast.wall_seconds:.1f}%); the {count - 1} proposals take {serial:.0f} s in series "
        f"against {fast.wall_seconds:.0f} s of instant campaign, a slot's candidate {per_candidate:.0f} s against "
        f"{delay * SLOTS:.0f} s of proposals per round of slots: {bound} bound the campaign\n"
        f"target <= {TARGET_PERCENT:.0f}% added wall: {'met' if percent <= TARGET_PERCENT else 'missed'}"
        f" ({'met' if idle_percent <= TARGET_PERCENT else 'missed'} by the idle time)"
    )


if __name__ == "__main__":
    main()
