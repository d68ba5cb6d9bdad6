"""What the sandbox and the trusted evaluator add to one Fed-Heart-Disease candidate.

Runs the baseline candidate twice on a throw-away copy of the bundled tasks: once as the
runner does today (unsandboxed job, score read from NVFlare's cross-site results) and once
sandboxed (bubblewrap, raw data hidden, per-site views) followed by the trusted evaluator.
The data export runs once per campaign and evaluation subset, so it is shown apart.

    python benchmarks/integrity_overhead.py [--full] [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.guard.validate import protected_hashes  # noqa: E402
from engine.profile import load_profile  # noqa: E402
from engine.run.databridge import export_site_data, pin_bridge  # noqa: E402
from engine.run.evaluator import ModelProcess, reported_scores, score_mismatch  # noqa: E402
from engine.run.jobbox import job_spec  # noqa: E402
from engine.run.runner import RUN_TOKEN_VAR, evaluation_environment, job_command, run_job  # noqa: E402
from engine.run.sandbox import SandboxSpec, detect_sandbox, wrap  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402
from engine.store.gitsafe import run_git  # noqa: E402

PROFILE = "fed_heart_disease"


def workspace_copy(scratch: Path) -> Path:
    root = scratch / "workspace"
    root.mkdir()
    for folder in ("tasks", "profiles"):
        shutil.copytree(bundle_root() / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "base")
    return root


def unsandboxed(root: Path, profile, scratch: Path, smoke: bool) -> tuple[float, float]:
    started = time.monotonic()
    result = run_job(root, profile, {}, scratch / f"plain-{uuid.uuid4().hex[:6]}", smoke=smoke)
    if result.status != "ok":
        raise SystemExit(f"error: the unsandboxed run failed: {result.error}")
    return time.monotonic() - started, result.score


def sandboxed(root: Path, profile, scratch: Path, data, smoke: bool) -> tuple[float, float, float, float]:
    run_dir = scratch / f"boxed-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir()
    subset = evaluation_environment(profile, "validation")
    env = {"PYTHONUNBUFFERED": "1", RUN_TOKEN_VAR: uuid.uuid4().hex, **subset}
    spec = job_spec(root, run_dir, data.view_dir, profile.surface.protected, env)
    command = wrap(job_command(root, profile, {}, run_dir, "sim", smoke), spec)
    started = time.monotonic()
    # The model process starts with the job (it imports torch meanwhile) and scores after it.
    model_process = ModelProcess(root, data, list(profile.budget.final_eval_clients), spec.hidden)
    with open(run_dir / "job.log", "w") as log:
        done = subprocess.run(
            command.argv, env=command.env, cwd=command.cwd, stdout=log, stderr=subprocess.STDOUT
        )
    job_seconds = time.monotonic() - started
    if done.returncode != 0:
        model_process.close()
        raise SystemExit(f"error: the sandboxed job failed; see {run_dir / 'job.log'}")
    started = time.monotonic()
    evaluation = model_process.finish(
        profile.task_dir.replace("/", ".") + ".model",
        str(profile.baseline["model_arch"]),
        run_dir / "nvflare",
        profile.metric.name,
        profile.budget.max_model_params,
    )
    eval_seconds = time.monotonic() - started
    if not evaluation.ok:
        raise SystemExit(f"error: the evaluator failed: {evaluation.error}")
    mismatch = score_mismatch(evaluation.per_site, reported_scores(run_dir / "nvflare", profile.metric.name))
    if mismatch:
        raise SystemExit(f"error: {mismatch}")
    return job_seconds, eval_seconds, evaluation.score, evaluation.seconds


def sandbox_startup(times: int = 5) -> float:
    """Median wall time of an empty command in the job's sandbox: the sandbox's own cost."""
    spec = SandboxSpec(workdir=Path("/"))
    seconds = []
    for _ in range(times):
        command = wrap(["/bin/true"], spec)
        started = time.monotonic()
        subprocess.run(command.argv, env=command.env, cwd=command.cwd, check=True)
        seconds.append(time.monotonic() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--full", action="store_true", help="the profile's full budget instead of the smoke one"
    )
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times")
    options = parser.parse_args()
    if detect_sandbox() != "bwrap":
        raise SystemExit("error: bubblewrap is not usable here; nothing to compare")
    smoke = not options.full
    with tempfile.TemporaryDirectory(prefix="afr-integrity-") as tmp:
        scratch = Path(tmp)
        root = workspace_copy(scratch)
        profile = load_profile(root, PROFILE)
        subset = evaluation_environment(profile, "validation")
        started = time.monotonic()
        bridge = pin_bridge(root, "HEAD", protected_hashes(root, profile), scratch / "trusted" / "bridge")
        sites = list(profile.budget.final_eval_clients)
        data = export_site_data(
            bridge,
            profile.task_dir,
            sites,
            profile.budget.n_clients,
            scratch / "trusted" / "data",
            subset,
            scratch / "views",
            subset,
        )
        export_seconds = time.monotonic() - started
        plain, boxed, evals, scores = [], [], [], set()
        for _ in range(options.repeat):
            seconds, score = unsandboxed(root, profile, scratch, smoke)
            plain.append(seconds)
            job_seconds, eval_seconds, boxed_score, _ = sandboxed(root, profile, scratch, data, smoke)
            boxed.append(job_seconds)
            evals.append(eval_seconds)
            scores.add((round(score, 6), round(boxed_score, 6)))
    startup = sandbox_startup()
    plain_s, boxed_s, eval_s = statistics.median(plain), statistics.median(boxed), statistics.median(evals)
    total = boxed_s + eval_s
    budget = "full" if options.full else "smoke"
    print(
        f"Fed-Heart-Disease baseline, {budget} budget, median of {options.repeat} run(s) each, sandbox {detect_sandbox()}"
    )
    print(f"{'':34}{'unsandboxed':>14}{'sandboxed':>14}")
    print(f"{'job wall time (s)':34}{plain_s:14.2f}{boxed_s:14.2f}")
    print(f"{'trusted evaluator, after the job (s)':34}{'-':>14}{eval_s:14.2f}")
    print(f"{'candidate total (s)':34}{plain_s:14.2f}{total:14.2f}")
    print(f"{'data export, once per campaign (s)':34}{'-':>14}{export_seconds:14.2f}")
    print(f"{'bwrap start-up, /bin/true (s)':34}{'-':>14}{startup:14.3f}")
    print(
        f"runs (unsandboxed | sandboxed): {' '.join(f'{v:.1f}' for v in plain)} | {' '.join(f'{v:.1f}' for v in boxed)}"
    )
    print(
        f"sandbox adds {boxed_s - plain_s:+.2f} s, evaluator {eval_s:+.2f} s: "
        f"{(total - plain_s) / plain_s * 100:+.1f}% of the unsandboxed candidate"
    )
    print(f"scores (unsandboxed, sandboxed): {sorted(scores)}")


if __name__ == "__main__":
    main()
