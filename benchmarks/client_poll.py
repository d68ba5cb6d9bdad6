"""Does the lean job's site poll (``--client_poll_interval``, tasks/shared/site_runtime.py) earn its patch?

Runs the Heart baseline at its full budget through the engine's runner, lean in every other
respect, alternating NVFlare's fixed 0.5 s in-process Client API poll and the lean 0.02 s,
``REPEATS`` times each in one invocation (A B A B: load drifts on a shared machine). Prints each
run's median later-round time, rounds, wall time and score (which must be identical).

    python benchmarks/client_poll.py [REPEATS]     (default: 2)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from campaign_bench import PROFILE, load  # noqa: E402

from engine.profile import load_profile  # noqa: E402
from engine.run import runner  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402

STOCK_POLL, LEAN_POLL = 0.5, 0.02
ORIGINAL = runner.job_command


def with_poll(seconds: float):
    def command(*args, **kwargs) -> list[str]:
        return [*ORIGINAL(*args, **kwargs), "--client_poll_interval", str(seconds)]

    return command


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    root = bundle_root()
    profile = load_profile(root, PROFILE)
    print(f"{PROFILE} baseline, full budget, lean; start: {load()}", flush=True)
    print(f"{'poll s':>7}{'s/round':>9}{'rounds s':>10}{'wall s':>8}{'score':>10}")
    found: dict[float, list] = {STOCK_POLL: [], LEAN_POLL: []}
    with tempfile.TemporaryDirectory(prefix="afr-poll-") as scratch:
        for index in range(repeats):
            for poll in (STOCK_POLL, LEAN_POLL):
                runner.job_command = with_poll(poll)
                result = runner.run_job(root, profile, {}, Path(scratch) / f"{poll}-{index}")
                if result.status != "ok":
                    raise SystemExit(f"poll {poll}: run failed ({result.error}); log {result.log_path}")
                later = statistics.median(result.round_seconds[1:])
                found[poll].append((later, result.rounds_seconds, result.runtime_seconds, result.score))
                print(
                    f"{poll:>7}{later:>9.2f}{result.rounds_seconds:>10.1f}{result.runtime_seconds:>8.1f}"
                    f"{result.score:>10.6f}  {load()}",
                    flush=True,
                )
    stock = statistics.mean(r[1] for r in found[STOCK_POLL])
    lean = statistics.mean(r[1] for r in found[LEAN_POLL])
    scores = {r[3] for rows in found.values() for r in rows}
    print(
        f"rounds phase: {stock:.1f} s with the 0.5 s poll, {lean:.1f} s with 0.02 s "
        f"({stock - lean:+.1f} s per candidate); scores {'identical' if len(scores) == 1 else 'DIFFERENT'}"
    )


if __name__ == "__main__":
    main()
