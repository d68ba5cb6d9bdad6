"""Wall time of one candidate, NVFlare's defaults against the lean job, side by side.

Runs each profile's baseline job at its full budget through the engine's runner twice, one
run after the other: untuned (``--no-lean``: NVFlare's defaults, the runner waits for the
job to exit) and tuned (the lean knobs of ``tasks/shared/jobs.py``, the runner returns on
the complete result). The phases come from NVFlare's own log lines (``engine/run/phases.py``):
start-up (until NVFlare's server starts the first round), the first round (which also waits
for the site processes to start), the later rounds (median), final evaluation, and the tail
from the complete score until the runner returned (the simulator's shutdown when untuned).
CPU is the user and system time of every process of the run (sampled twice a second, so a
process's last half second may be missed): on a shared machine it shows what wall time
cannot. The scores must be equal; the load average is printed beside the figures.

    python benchmarks/candidate_time.py [PROFILE ...]     (default: fed_heart_disease)
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.profile import load_profile  # noqa: E402
from engine.run.runner import RunResult, processes_of_run, run_job  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402

TARGETS = {"fed_heart_disease": 30.0}  # seconds per tuned candidate on an idle 2-core CPU
IDLE_LOAD = 2.5  # a 1-minute load average above this on 2 cores is not an idle machine


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


class CpuSampler:
    """CPU seconds of every process of one run, from samples of their running totals."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def start(self, token: str) -> None:
        self.token = token
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.5):
            for process in processes_of_run(self.token):
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    self.seen[process.pid] = times.user + times.system

    def stop(self) -> float:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
        return sum(self.seen.values())


def later_round(result: RunResult) -> float | None:
    later = result.round_seconds[1:]
    return statistics.median(later) if later else None


def row(label: str, result: RunResult, cpu: float, load_before: str) -> str:
    def seconds(value: float | None) -> str:
        return f"{value:>9.2f}" if value is not None else f"{'-':>9}"

    return (
        f"{label:<8}{seconds(result.startup_seconds)}{seconds((result.round_seconds or [None])[0])}"
        f"{seconds(later_round(result))}{seconds(result.rounds_seconds)}"
        f"{seconds(result.final_eval_seconds)}{seconds(result.shutdown_seconds)}{result.runtime_seconds:>9.1f}"
        f"{cpu:>8.1f}{result.score:>10.6f}  {load_before} -> {load()}"
    )


def time_profile(root: Path, name: str, scratch: Path) -> None:
    profile = load_profile(root, name)
    print(f"\n{name}: {profile.budget.n_clients} clients, {profile.budget.num_rounds} rounds (full budget)")
    print(
        f"{'job':<8}{'start-up':>9}{'round 1':>9}{'s/round':>9}{'rounds':>9}{'final ev':>9}{'tail':>9}{'wall s':>9}"
        f"{'CPU s':>8}{'score':>10}  load average 1/5/15 min, before -> after"
    )
    results, loads = {}, {}
    for label, lean in (("untuned", False), ("tuned", True)):
        before = load()
        loads[label] = os.getloadavg()[0]
        sampler = CpuSampler()
        result = run_job(root, profile, {}, scratch / f"{name}-{label}", lean=lean, on_start=sampler.start)
        cpu = sampler.stop()
        if result.status != "ok":
            raise SystemExit(f"{name} {label}: run failed ({result.error}); log {result.log_path}")
        results[label] = result
        print(row(label, result, cpu, before), flush=True)
    untuned, tuned = results["untuned"], results["tuned"]
    same = "identical" if (untuned.score, untuned.per_site) == (tuned.score, tuned.per_site) else "DIFFERENT"
    verdict = ""
    if name in TARGETS and loads["tuned"] > IDLE_LOAD:
        verdict = f"; target <= {TARGETS[name]:.0f} s idle not judged: load {loads['tuned']:.1f}, not idle"
    elif name in TARGETS:
        verdict = f"; target <= {TARGETS[name]:.0f} s idle: {'met' if tuned.runtime_seconds <= TARGETS[name] else 'missed'}"
    print(f"speed-up {untuned.runtime_seconds / tuned.runtime_seconds:.2f}x, scores {same}{verdict}")


def main() -> None:
    root = bundle_root()
    names = sys.argv[1:] or ["fed_heart_disease"]
    with tempfile.TemporaryDirectory(prefix="afr-bench-") as scratch:
        for name in names:
            time_profile(root, name, Path(scratch))


if __name__ == "__main__":
    main()
