"""Lean NVFlare jobs compute exactly what NVFlare's defaults compute, and the early return leaves nothing behind.

One lean and one stock (``--no-lean``) run per bundled task, at a two-round smoke budget so
that a second round starts from an aggregated model; the runner scores both.

One lean knob is numerical: torch's intra-op thread count splits a matrix product's sums
differently, so a model big enough to be split (LEAF's 60x10 layer at batch 32 on two threads)
differs in the last bits between one thread and two, run after run, while Heart's 13-feature
model is never split. Each setting is reproducible on its own. So LEAF's stock run keeps the
lean thread count (``threads_per_site = 1``) and every other NVFlare default: what must not
change a bit is NVFlare's waiting, the final-model-only evaluation and the early return.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
import torch

from engine.profile import load_profile
from engine.run.phases import PhaseClock
from engine.run.runner import (
    complete_result,
    job_command,
    keep_complete,
    processes_of_run,
    run_job_retrying_stalls,
)

TASKS = ("fed_heart_disease", "leaf_synthetic")


STOCK_THREADS = {"fed_heart_disease": None, "leaf_synthetic": 1}  # None: torch's default (all cores)


def two_round_smoke(root: Path, name: str, threads: int | None = None):
    profile = load_profile(root, name)
    run = profile.run.model_copy(update={"threads_per_site": threads})
    return profile.model_copy(update={"smoke": {**profile.smoke, "num_rounds": 2}, "run": run})


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory) -> dict:
    """Per task and mode: the result, the run's token and its run directory."""
    done = {}
    for name in TASKS:
        for lean in (True, False):
            profile = two_round_smoke(root, name, None if lean else STOCK_THREADS[name])
            run_dir = tmp_path_factory.mktemp(f"{name}-{'lean' if lean else 'stock'}")
            tokens: list[str] = []
            # NVFlare stalls now and then on a loaded machine: the run goes again, as in a campaign.
            result = run_job_retrying_stalls(root, profile, {}, run_dir, smoke=True, lean=lean, on_start=tokens.append)
            # Checked at once, before another run starts: nothing of this run may still live.
            left = [p.pid for token in tokens for p in processes_of_run(token)]
            mentioning = [
                p.pid
                for p in psutil.process_iter(["cmdline"])
                if str(run_dir) in " ".join(p.info["cmdline"] or [])
            ]
            done[name, lean] = {"result": result, "left": left, "mentioning": mentioning, "run_dir": run_dir}
    return done


def final_weights(result_dir: str) -> dict[str, torch.Tensor]:
    (path,) = Path(result_dir).glob("**/FL_global_model.pt")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved.get("model", saved)


@pytest.mark.nvflare
@pytest.mark.parametrize("name", TASKS)
def test_lean_job_scores_bit_identically_to_the_stock_job(runs, name):
    lean, stock = runs[name, True]["result"], runs[name, False]["result"]
    for result in (lean, stock):
        assert result.status == "ok", f"{result.error}\n" + "\n".join(result.log_tail[-20:])
    assert lean.score == stock.score and lean.per_site == stock.per_site
    lean_weights, stock_weights = final_weights(lean.result_dir), final_weights(stock.result_dir)
    assert lean_weights.keys() == stock_weights.keys()
    for key, value in lean_weights.items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(stock_weights[key])), key
    # The lean run evaluated only the final model, with NVFlare's knobs set as asked.
    lean_log, stock_log = Path(lean.log_path).read_text(), Path(stock.log_path).read_text()
    assert "Server models loaded: ['SRV_FL_global_model.pt']." in lean_log
    assert "SRV_best_FL_global_model.pt" in stock_log
    assert "threads_per_site=1" in lean_log and "task_request_interval=2.0" in stock_log


@pytest.mark.nvflare
def test_early_return_is_final_and_leaves_no_process(runs):
    lean, stock = runs["fed_heart_disease", True], runs["fed_heart_disease", False]
    assert lean["result"].early_return and not stock["result"].early_return
    for run in (lean, stock):
        assert run["left"] == [] and run["mentioning"] == []
    log = Path(lean["result"].log_path).read_text()
    assert "afr: result complete; the runner stopped the simulator" in log
    assert f"afr: score: {lean['result'].score:.6f}" in log
    # Phases and per-round metrics come from NVFlare's own log lines.
    for result in (lean["result"], stock["result"]):
        assert result.rounds_completed == 2 and len(result.round_seconds) == 2
        assert result.startup_seconds > 0 and result.rounds_seconds > 0 and result.final_eval_seconds > 0
        assert result.round_metrics[0] is None and 0.0 <= result.round_metrics[1] <= 1.0
    assert "afr: round 2/2 global accuracy=" in log
    # The stock job exits on its own only after its simulator has shut down.
    assert stock["result"].shutdown_seconds > lean["result"].shutdown_seconds


def test_the_runner_passes_the_lean_switch_and_the_profile_threads(root, tmp_path):
    profile = load_profile(root, "fed_heart_disease")
    assert "--no-lean" not in job_command(root, profile, {}, tmp_path, "sim", smoke=True)
    assert "--no-lean" in job_command(root, profile, {}, tmp_path, "sim", smoke=True, lean=False)
    threaded = profile.model_copy(update={"run": profile.run.model_copy(update={"threads_per_site": 2})})
    command = job_command(root, threaded, {}, tmp_path, "sim", smoke=True)
    assert command[command.index("--threads_per_site") + 1] == "2"


def test_phase_clock_reads_rounds_and_metrics_from_nvflare_lines():
    clock = PhaseClock(started=0.0, num_rounds=3, metric="accuracy")
    lines = [
        (4.0, "Round 0 started."),
        (9.0, "Round 1 started."),  # the first round waited for the sites to start
        (9.5, "2026-11-25 - INFO - validation metric 0.5 from client site-1"),
        (9.6, "2026-11-25 - INFO - validation metric 0.7 from client site-2"),
        (11.0, "Round 2 started."),
        (11.5, "validation metric 0.8 from client site-1"),
        (13.0, "Finished FedAvg."),
    ]
    streamed = [out for now, line in lines for out in clock.feed(line, now)]
    clock.result_complete(14.5)
    assert streamed == [
        "afr: round 1/3",
        "afr: round 2/3",
        "afr: round 2/3 global accuracy=0.600000 sites=2",
        "afr: round 3/3",
        "afr: round 3/3 global accuracy=0.800000 sites=1",
        "afr: final evaluation",
    ]
    phases = clock.phases()
    assert phases.round_seconds == [5.0, 2.0, 2.0] and phases.rounds_completed == 3
    assert phases.startup_seconds == 4.0 and phases.rounds_seconds == 9.0 and phases.final_eval_seconds == 1.5
    assert phases.round_metrics == [None, 0.6, 0.8]


def test_a_result_counts_only_when_complete_and_is_kept_complete(root, tmp_path):
    """Half-written or stale files are not a result; a file a stopped writer truncated is put back."""
    profile = load_profile(root, "fed_heart_disease")
    results = (
        tmp_path / "nvflare" / "job" / "server" / "simulate_job" / "cross_site_val" / "cross_val_results.json"
    )
    results.parent.mkdir(parents=True)
    whole = json.dumps(
        {f"site-{i}": {"SRV_FL_global_model.pt": {"accuracy": 0.5 + i / 10}} for i in range(1, 5)}
    )
    for partial in (
        whole[: len(whole) // 2],
        json.dumps({"site-1": {"SRV_FL_global_model.pt": {"accuracy": 1.0}}}),
    ):
        results.write_text(partial)
        assert complete_result(root, profile, tmp_path, 0.0) is None
    results.write_text(whole)
    assert complete_result(root, profile, tmp_path, time.time() + 60) is None  # older than the run
    found = complete_result(root, profile, tmp_path, 0.0)
    assert found is not None and found.result_dir == tmp_path / "nvflare" / "job"
    assert keep_complete(found) is False
    results.write_text(whole[:10])  # a second writer, stopped mid-write
    assert keep_complete(found) is True and results.read_text() == whole
