"""A fast stand-in for the NVFlare runner, for state-machine tests only.

It scores a candidate by a smooth function of its args (higher lr helps, up to a point;
FedAdam helps a little) and never starts a process. Tests of the real job path use
``engine.run.runner.run_job``; see test_campaign_nvflare.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from engine.run.runner import RunResult


class FakeRunner:
    def __init__(
        self,
        delay: float = 0.0,
        crash_when: dict | None = None,
        stalls: int | set[int] = 0,
        stall_error: str = "no output for 240 s",
        crash_if: Callable[[dict], bool] | None = None,
        crash_log: str = "RuntimeError: boom\n",
        loss: bool | None = None,
        shift: Callable[[dict, int], float] | None = None,
    ) -> None:
        # Added to the score for (args, seed): a seed-dependent effect such as a lucky seed.
        self.shift = shift or (lambda args, seed: 0.0)
        # Loss-like scores (lower is better, 1 - the accuracy-like one); None: as the profile's direction.
        self.loss = loss
        self.crash_log = crash_log  # what a crashed run's job.log holds
        # These calls (0-based; an int: the first that many) report a stalled NVFlare job.
        self.stalls = set(range(stalls)) if isinstance(stalls, int) else set(stalls)
        self.stall_error = stall_error
        self.delay = delay
        self.crash_when = crash_when or {}
        self.crash_if = crash_if or (lambda args: False)
        self.calls: list[dict] = []

    def __call__(self, root, profile, args, run_dir: Path, **options) -> RunResult:
        self.calls.append({"root": Path(root), "args": dict(args), "run_dir": run_dir, **options})
        if options.get("on_start"):
            options["on_start"]("fake-token")
        run_dir.mkdir(parents=True, exist_ok=True)
        log = run_dir / "job.log"
        time.sleep(self.delay)
        if len(self.calls) - 1 in self.stalls:
            return RunResult("stalled", 0.0, {}, self.delay, str(log), None, None, [], self.stall_error)
        if any(args.get(k) == v for k, v in self.crash_when.items()) or self.crash_if(args):
            log.write_text(self.crash_log)
            return RunResult(
                "crash", 0.0, {}, self.delay, str(log), None, 1, ["RuntimeError: boom"], "RuntimeError: boom"
            )
        full = {**profile.baseline, **args}
        lr = float(full.get("lr", 0.001))
        score = (
            0.6
            + 0.1 * math.exp(-((math.log10(lr) + 2.0) ** 2))
            + (0.02 if full.get("aggregator") == "fedadam" else 0)
            + self.shift(dict(args), options.get("seed") or profile.budget.seed)
        )
        if self.loss if self.loss is not None else not profile.maximize:
            score = 1.0 - score
        round_line = f"site-1 round 0: global_accuracy={score:.4f}"
        log.write_text(f"{round_line}\nscore: {score:.6f}\n")
        if options.get("on_line"):
            options["on_line"](round_line)
        return RunResult("ok", score, {"site-1": score}, self.delay, str(log), str(run_dir), 0, [])
