"""What the runner runs and returns: the job's command line, its evaluation flags, ``RunResult``.

Kept apart from ``runner.py`` so that modules the runner dispatches to (``prod.py``) and the
budget verifier (``jobconfig.py``) can use them without importing the runner back.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.profile import Profile, Scalar

RUN_TOKEN_VAR = "AFR_RUN_TOKEN"
CRASH_SCORE = 0.0
EVALUATION_SUBSETS = ("validation", "heldout", "full")


@dataclass
class RunResult:
    status: str  # "ok", "crash", "timeout" or "stalled" (no output for the profile's stall_seconds)
    score: float
    per_site: dict[str, float]
    runtime_seconds: float
    log_path: str
    result_dir: str | None
    returncode: int | None
    log_tail: list[str] = field(default_factory=list)
    error: str = ""
    sandbox: str = "none"  # "bwrap" or "none": what the job ran in
    evaluator: dict = field(default_factory=dict)  # afr's evaluator: per-site scores, counts (trusted runs)
    # Where the time went (engine/run/phases.py); None where the run never got that far.
    startup_seconds: float | None = None
    rounds_seconds: float | None = None
    final_eval_seconds: float | None = None
    rounds_completed: int = 0
    round_seconds: list[float] = field(default_factory=list)
    round_metrics: list[float | None] = field(default_factory=list)
    shutdown_seconds: float | None = None  # score complete -> runner returned (processes ended)
    early_return: bool = False  # returned on the complete result, before the simulator exited
    placement: dict = field(default_factory=dict)  # where it ran: executor, node, GPU (engine/run/executors.py)

    def to_dict(self) -> dict:
        return asdict(self)


def job_command(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    env: str,
    smoke: bool,
    seed: int | None = None,
    lean: bool = True,
    subset: str = "validation",
) -> list[str]:
    job = root / profile.task_dir / profile.job
    knobs = [] if lean else ["--no-lean"]
    if profile.run.threads_per_site is not None:
        knobs += ["--threads_per_site", str(profile.run.threads_per_site)]
    return [
        sys.executable,
        "-u",
        str(job),
        *profile.job_flags(args, smoke=smoke, seed=seed),
        "--metric",  # the profile's metric and direction, so the job's NVFlare key metric agrees
        profile.metric.name,
        "--metric_direction",
        profile.metric.direction,
        "--env",
        env,
        "--workspace",
        str(run_dir / "nvflare"),
        "--result_json",
        str(run_dir / "job_result.json"),
        *evaluation_flags(profile, subset),
        *knobs,
    ]


def evaluation_flags(profile: Profile, subset: str) -> list[str]:
    """The job flags that put the evaluation subset into the job's configuration (see ``evaluation_environment``).

    Flags, not the job's environment: the job writes them into its client configuration,
    which reaches every site, a real deployment's remote ones included.
    """
    names = {"AFR_EVAL_SUBSET": "--eval_subset", "AFR_HELDOUT_FRACTION": "--heldout_fraction"}
    names["AFR_HELDOUT_SEED"] = "--heldout_seed"
    return [part for name, value in evaluation_environment(profile, subset).items() for part in (names[name], value)]


def evaluation_environment(profile: Profile, subset: str) -> dict[str, str]:
    """The variables telling the task's protected data bridge which evaluation subset to score on.

    The names are the contract with the workspace's ``tasks/shared/holdout.py`` (a test
    keeps them equal); the engine does not import task code, which an installed afr lacks.
    """
    if subset not in EVALUATION_SUBSETS:
        raise ValueError(f"evaluation subset {subset!r} is not one of {', '.join(EVALUATION_SUBSETS)}")
    if profile.heldout is None and subset == "heldout":
        raise ValueError(f"profile {profile.name} declares no [heldout] subset")
    if profile.heldout is None or subset == "full":
        return {"AFR_EVAL_SUBSET": "full"}
    return {
        "AFR_EVAL_SUBSET": subset,
        "AFR_HELDOUT_FRACTION": repr(float(profile.heldout.fraction)),
        "AFR_HELDOUT_SEED": str(profile.heldout.seed),
    }


def final_score_json(result_dir: Path, metric: str, clients: list[str] | None) -> tuple[float, dict[str, float]]:
    """The job's own mean and per-site final-model metric, read as plain JSON.

    Nothing of the worktree is imported (its ``scoring.py`` is candidate-reachable). Without
    the trusted path (direct runs in tests and benchmarks) this is the score; with it, only
    the cross-check of afr's evaluator. Raises ValueError when a scored client is missing.
    """
    from engine.run.evaluator import reported_scores

    scores = reported_scores(Path(result_dir), metric)
    chosen = sorted(scores) if clients is None else clients
    missing = [site for site in chosen if site not in scores]
    if missing or not chosen:
        raise ValueError(f"final evaluation has no result for {missing or 'any client'}")
    per_site = {site: scores[site] for site in chosen}
    return sum(per_site.values()) / len(per_site), per_site
