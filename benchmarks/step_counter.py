"""The trusted step counter on the bundled tasks' honest baselines: same scores, what it costs.

For each task, the baseline runs twice through the trusted path (``run_trusted``: the job in
the sandbox, afr's evaluator): once with the step counter and its budget check, once with
the counter left out. It prints both scores (they must be bit-identical), the counted steps
against the declared ones, and both wall times.

    python benchmarks/step_counter.py [--tasks fed_heart_disease,leaf_synthetic] [--full]

CIFAR-10 runs on a small synthetic folder in the release's format (the test suite's
generator) unless ``--cifar-root`` names the real ``cifar-10-batches-py`` parent folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.guard.validate import protected_hashes  # noqa: E402
from engine.profile import load_profile  # noqa: E402
from engine.run import trusted as trusted_module  # noqa: E402
from engine.run.stepcount import StepCounts  # noqa: E402
from engine.run.trusted import TrustedScoring, run_trusted  # noqa: E402
from engine.store.bundle import bundle_root  # noqa: E402
from engine.store.gitsafe import run_git  # noqa: E402

TASKS = ("fed_heart_disease", "fed_tcga_brca", "leaf_synthetic", "cifar10")


class NoStepLog:
    """The counter left out: no FIFO, no PYTHONPATH entry, nothing to check."""

    def __init__(self, parent: Path) -> None:
        self.env: dict[str, str] = {}
        self.mounts: tuple[Path, ...] = ()

    def close(self) -> StepCounts:
        return StepCounts()


def workspace(scratch: Path, cifar_root: Path | None) -> Path:
    root = scratch / "workspace"
    root.mkdir()
    for folder in ("tasks", "profiles"):
        shutil.copytree(bundle_root() / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "program.md").write_text("")
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


def run(root: Path, name: str, scratch: Path, smoke: bool, counter: bool):
    profile = load_profile(root, name)
    directory = scratch / f"campaign-{name}"
    scoring = TrustedScoring(root, directory, profile, "HEAD", protected_hashes(root, profile))
    scoring.site_data("validation")  # the export is once per campaign: not part of a candidate's time
    run_dir = directory / ("runs-counted" if counter else "runs-plain")
    started = time.monotonic()
    if counter:
        result = run_trusted(root, profile, {}, run_dir, scoring, smoke=smoke)
    else:
        with mock.patch.object(trusted_module, "StepLog", NoStepLog):
            with mock.patch.object(trusted_module, "declared_work", lambda *a, **k: None):
                result = run_trusted(root, profile, {}, run_dir, scoring, smoke=smoke)
    return result, time.monotonic() - started, profile


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
            plain, plain_s, _ = run(root, name, scratch, smoke, counter=False)
            counted, counted_s, profile = run(root, name, scratch, smoke, counter=True)
            same = (plain.status, plain.score, plain.per_site) == (counted.status, counted.score, counted.per_site)
            steps = counted.evaluator.get("steps", {}).get("steps", {})
            per_site = {site: sum(rounds.values()) for site, rounds in sorted(steps.items())}
            print(f"{name} ({'smoke' if smoke else 'full'}, sandbox {counted.sandbox}):")
            print(f"  without counter: {plain.status} {plain.score!r} in {plain_s:.1f} s {plain.error}")
            print(f"  with counter:    {counted.status} {counted.score!r} in {counted_s:.1f} s {counted.error}")
            print(f"  bit-identical scores: {same}; steps counted per site (all rounds): {per_site}")


if __name__ == "__main__":
    main()
