"""The trusted step counter on the bundled tasks' honest baselines: same scores, what it costs.

For each task, the baseline job runs twice, directly (``run_job``, no sandbox, the job's own
score): once with the step counter in its environment (``PYTHONPATH`` and the FIFO, as the
trusted path sets them) and once without. It prints both scores (they must be bit-identical),
the counted steps per site, the budget check's verdict against the profile's ``[local_work]``,
and both wall times. (Direct runs, because Fed-TCGA-BRCA's data bridge has no per-site views
for the trusted path yet; ``tests/test_redteam_agent.py`` runs the counter in the sandbox.)

    python benchmarks/step_counter.py [--tasks fed_heart_disease,leaf_synthetic] [--full]

CIFAR-10 runs on a small synthetic folder in the release's format (the test suite's
generator) unless ``--cifar-root`` names the real ``cifar-10-batches-py`` parent folder.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.profile import load_profile  # noqa: E402
from engine.run.runner import run_job  # noqa: E402
from engine.run.stepcount import StepLog, budget_problem, declared_work  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402
from engine.store.gitsafe import run_git  # noqa: E402

TASKS = ("fed_heart_disease", "fed_tcga_brca", "leaf_synthetic", "cifar10")


def workspace(scratch: Path, cifar_root: Path | None) -> Path:
    root = scratch / "workspace"
    root.mkdir()
    for folder in ("tasks", "profiles"):
        shutil.copytree(bundle_root() / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(bundle_root() / "program.md", root / "program.md")  # profiles name it as context
    if cifar_root is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from test_cifar10 import write_cifar_folder  # the suite's synthetic CIFAR-10 in the release format

        write_cifar_folder(root / "data" / "cifar10")
    else:
        (root / "data").mkdir()
        (root / "data" / "cifar10").symlink_to(cifar_root.resolve())
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "base")
    return root


def train_sizes(root: Path, profile) -> dict[str, int]:
    """Training rows per site, from the task's own data bridge (this script is not the engine)."""
    sys.path.insert(0, str(root))
    data = importlib.import_module(profile.task_dir.replace("/", ".") + ".data")
    sizes = {}
    for i in range(1, profile.budget.n_clients + 1):
        site_name = f"site-{i}"
        params = inspect.signature(data.load_site).parameters
        if "data_root" in params:  # CIFAR-10: (site, data_root, num_clients, alpha, split_seed)
            budget = profile.budget.values()
            site = data.load_site(
                site_name, str(root / budget["data_root"]), budget["n_clients"], budget["alpha"], budget["split_seed"]
            )
        elif "num_clients" in params:
            site = data.load_site(site_name, profile.budget.n_clients)
        else:
            site = data.load_site(site_name)
        sizes[site_name] = len(site.train.labels) if hasattr(site.train, "labels") else len(site.train)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--full", action="store_true", help="full budgets instead of smoke ones")
    parser.add_argument("--cifar-root", type=Path, default=None)
    options = parser.parse_args()
    smoke = not options.full
    with tempfile.TemporaryDirectory(prefix="afr-steps-") as tmp:
        scratch = Path(tmp)
        root = workspace(scratch, options.cifar_root)
        for name in options.tasks.split(","):
            profile = load_profile(root, name)
            started = time.monotonic()
            plain = run_job(root, profile, {}, scratch / f"{name}-plain", smoke=smoke)
            plain_s = time.monotonic() - started
            log = StepLog(scratch / "steps")
            started = time.monotonic()
            with mock.patch.dict(os.environ, log.env):  # the job inherits them, as the sandbox passes them
                counted = run_job(root, profile, {}, scratch / f"{name}-counted", smoke=smoke)
            counted_s = time.monotonic() - started
            counts = log.close()
            declared = declared_work(profile, {}, smoke, train_sizes(root, profile))
            verdict = budget_problem(counts, declared) if declared else "(no [local_work])"
            same = (plain.status, plain.score, plain.per_site) == (counted.status, counted.score, counted.per_site)
            print(f"{name} ({'smoke' if smoke else 'full'} budget, {declared.unit if declared else '-'}):")
            print(f"  without counter: {plain.status} {plain.score!r} in {plain_s:.1f} s {plain.error}")
            print(f"  with counter:    {counted.status} {counted.score!r} in {counted_s:.1f} s {counted.error}")
            print(f"  bit-identical: {same}; declared per round {declared.per_round if declared else '-'}")
            print(f"  counted: {counts.steps}; budget check: {verdict or 'within budget'}", flush=True)


if __name__ == "__main__":
    main()
