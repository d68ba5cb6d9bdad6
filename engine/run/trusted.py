"""The trusted scoring path of a campaign: the score of record comes from afr, not from the job.

``TrustedScoring`` is made once per campaign directory. On first use it pins the protected
data bridge from the campaign's base commit (checked against the hashes pinned at its
start) and exports, per evaluation subset, the scored inputs and labels the evaluator uses
and the per-site views the sandboxed job reads; everything is cached under
``<campaign>/trusted/``, which no sandbox can see. ``run_trusted`` runs one job that way:
the job in the sandbox (or, without bubblewrap, with the allow-listed environment only),
the candidate's model in a sandboxed model process, the metric in the engine. Nothing of
the worktree is imported by the engine process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.run.databridge import SiteData, export_site_data, pin_bridge
from engine.run.evaluator import ModelProcess, score_mismatch
from engine.run.jobbox import job_spec
from engine.run.launch import LaunchRefused, prepare_launch
from engine.run.runner import CRASH_SCORE, RunResult, evaluation_environment, run_job
from engine.run.sandbox import detect_sandbox
from engine.run.scrub import scrub_secrets
from engine.run.stepcount import StepLog, budget_problem, declared_work
from engine.store.gitsafe import run_git

TRUSTED_DIR = "trusted"
COUNTS_FILE = "counts.json"  # written last: a folder without it is an unfinished export


def scored_sites(profile: Profile) -> list[str]:
    clients = profile.budget.final_eval_clients
    return (
        [f"site-{i}" for i in range(1, profile.budget.n_clients + 1)] if clients == "all" else list(clients)
    )


def view_subset(profile: Profile) -> str:
    """Jobs always read the validation views: held-out rows never reach candidate code."""
    return "full" if profile.heldout is None else "validation"


@dataclass
class TrustedScoring:
    root: Path  # the workspace (its git holds the base commit)
    directory: Path  # the campaign directory
    profile: Profile
    base_commit: str
    hashes: dict[str, str]
    sandbox: str = field(default_factory=detect_sandbox)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _bridge: Path | None = field(default=None, repr=False)
    _data: dict[str, SiteData] = field(default_factory=dict, repr=False)

    @classmethod
    def for_campaign(cls, root: Path, directory: Path, profile: Profile) -> TrustedScoring:
        """From the campaign's ``campaign.json`` (its base commit and pinned hashes)."""
        meta = json.loads((Path(directory) / "campaign.json").read_text())
        # A campaign.json without base_commit (written by hand or by an older afr): pin from HEAD; the
        # pinned hashes still decide whether those files may be used.
        base = meta.get("base_commit") or run_git(Path(root), "rev-parse", "HEAD").stdout.decode().strip()
        return cls(Path(root), Path(directory), profile, base, dict(meta["protected_hashes"]))

    @property
    def trusted_dir(self) -> Path:
        return self.directory / TRUSTED_DIR

    @property
    def view_dir(self) -> Path:
        return self.trusted_dir / "views"

    @property
    def sites(self) -> list[str]:
        return scored_sites(self.profile)

    def site_data(self, subset: str) -> SiteData:
        """The scored inputs/labels of ``subset`` (exported once, then read from the cache)."""
        with self._lock:  # parallel slots share one export
            if subset not in self._data:
                self._data[subset] = self._export(subset)
            return self._data[subset]

    def _export(self, subset: str) -> SiteData:
        views = view_subset(self.profile)
        if subset != views:
            self.site_data_unlocked(views)  # the views come with the validation export
        target = self.trusted_dir / f"data-{subset}"
        counts_file = target / COUNTS_FILE
        view_dir = self.view_dir if subset == views else None
        if counts_file.is_file():
            return SiteData(target, view_dir, json.loads(counts_file.read_text()))
        if self._bridge is None:
            self._bridge = pin_bridge(self.root, self.base_commit, self.hashes, self.trusted_dir / "bridge")
        data = export_site_data(
            self._bridge,
            self.profile.task_dir,
            self.sites,
            self.profile.budget.n_clients,
            target,
            evaluation_environment(self.profile, subset),
            view_dir,
            evaluation_environment(self.profile, views),
        )
        counts_file.write_text(json.dumps(data.counts))
        return data

    def run(self, run_job: Callable[..., RunResult], root, profile, args, run_dir, **options) -> RunResult:
        """``run_job(..., trusted=self)`` lands here (``run_job`` is passed in: no import cycle)."""
        return run_trusted(root, profile, args, run_dir, self, run_fn=run_job, **options)

    def site_data_unlocked(self, subset: str) -> SiteData:
        if subset not in self._data:
            self._data[subset] = self._export(subset)
        return self._data[subset]


def model_arch(profile: Profile, args: dict[str, Scalar]) -> str:
    return str(args.get("model_arch", profile.baseline.get("model_arch", "")))


def run_trusted(
    root: Path,
    profile: Profile,
    args: dict[str, Scalar],
    run_dir: Path,
    trusted: TrustedScoring,
    subset: str = "validation",
    run_fn: Callable[..., RunResult] | None = None,
    **options,
) -> RunResult:
    """``run_job`` in the sandbox, then the score of record from afr's evaluator.

    A job that fails is returned as it is; an evaluator error or a job whose own
    cross-site scores disagree with the evaluator's makes the run a crash with that reason.
    """
    root, run_dir = Path(root), Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        data = trusted.site_data(subset)
    except (OSError, RuntimeError, ValueError) as error:
        return RunResult(
            "crash", CRASH_SCORE, {}, 0.0, "", None, None, [], str(error), sandbox=trusted.sandbox
        )
    steps = StepLog(trusted.trusted_dir / "steps")  # the trusted step counter's FIFO (engine/run/stepcount.py)
    spec = job_spec(root, run_dir, trusted.view_dir, profile.surface.protected, steps.env)
    spec = replace(spec, readonly=(*spec.readonly, *steps.mounts))
    model = ModelProcess(root, data, trusted.sites, spec.hidden, trusted.sandbox)
    # The owned budget: job.py only exports its job; afr verifies it and launches it (engine/run/launch.py).
    # A POC run is verified the same way, then still run by job.py (PocEnv needs its admin session).
    try:
        launch = prepare_launch(
            root,
            profile,
            args,
            run_dir,
            spec,
            trusted.sandbox,
            smoke=options.get("smoke", False),
            seed=options.get("seed"),
            lean=options.get("lean", True),
            subset=subset,
        )
    except LaunchRefused as error:
        model.close()
        steps.close()
        scrub_secrets(run_dir)
        log = run_dir / "export.log"
        return RunResult(
            "crash", CRASH_SCORE, {}, 0.0, str(log), None, None, [], str(error), sandbox=trusted.sandbox
        )
    except BaseException:
        model.close()
        steps.close()
        raise
    if options.get("env", "sim") == "sim":
        spec = replace(spec, readonly=(*spec.readonly, launch.job_dir))  # verified: read-only from here on
        # The step counter's sitecustomize first, then the worktree the launched job imports from.
        paths = [steps.env.get("PYTHONPATH"), launch.env.get("PYTHONPATH")]
        launch.env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        options["launch"] = launch
    # A remote executor (Ray) ships the verified folder and launches it on its worker with the step
    # counter there; the worker's counts come back into this step log (engine/run/remote_launch.py).
    if getattr(getattr(run_fn, "__self__", None), "remote_executor", False):
        options["step_log"] = steps
    try:
        result = (run_fn or run_job)(
            root, profile, args, run_dir, subset=subset, sandbox_spec=spec, sandbox=trusted.sandbox, **options
        )
    except BaseException:
        model.close()
        raise
    finally:
        counts = steps.close()  # the job and every process of it have ended: all lines are in
        scrub_secrets(run_dir)  # a key candidate code found outside a sandbox, in the job's own files
    result = replace(
        result, sandbox=trusted.sandbox, runtime_seconds=result.runtime_seconds + launch.export_seconds
    )
    if result.status != "ok":
        model.close()
        return result
    evaluation = model.finish(
        profile.task_dir.strip("/").replace("/", ".") + ".model",
        model_arch(profile, args),
        run_dir / "nvflare",  # the workspace afr gave the job, not the path its result file names
        profile.metric.name,
        profile.budget.max_model_params,
    )
    facts = {
        "score": evaluation.score,
        "per_site": evaluation.per_site,
        "counts": evaluation.counts,
        "sandbox": evaluation.sandbox,
        "seconds": round(evaluation.seconds, 3),
        "reported": result.per_site,
        **launch.facts(),
        "steps": counts.to_dict(),
    }
    train_sizes = {site: int(c.get("train", 0)) for site, c in data.counts.items()}
    declared = declared_work(profile, args, bool(options.get("smoke")), train_sizes)
    over_budget = budget_problem(counts, declared) if declared is not None else ""
    if over_budget:
        return replace(result, status="crash", score=CRASH_SCORE, error=over_budget, evaluator=facts)
    if evaluation.error:
        return replace(result, status="crash", score=CRASH_SCORE, error=evaluation.error, evaluator=facts)
    # A held-out run's job sees the validation view (never the held-out rows), so what it reports is
    # about other rows: only runs on the view's own subset can be cross-checked.
    mismatch = score_mismatch(evaluation.per_site, result.per_site) if subset == view_subset(profile) else ""
    if mismatch:
        return replace(result, status="crash", score=CRASH_SCORE, error=mismatch, evaluator=facts)
    return replace(result, score=evaluation.score, per_site=evaluation.per_site, evaluator=facts)
