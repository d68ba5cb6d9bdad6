"""``afr task check PROFILE``: does a task keep the contract of docs/tasks.md?

Cheap checks run first and the first failure stops the run (the later ones would only fail
for the same reason, some after minutes of NVFlare):

1. ``profile``: the profile validates and every path it names exists.
2. ``contract``: ``client.py`` keeps the Client API contract (``engine/guard/contract.py``).
3. ``flags``: the job's own argparse parser accepts every flag list the engine can pass:
   the baseline, the smoke budget, each mutable arg at each bound (and 0 where allowed), each
   choice, both values of a bool, each aggregator. All lists go through one child process
   that stops the job as soon as its parser succeeds, so no model or NVFlare work is done.
4. ``subsets``: the data bridge's validation and held-out subsets of every client's scored
   split are disjoint and together cover it (compared row by row).
5. ``cap``: the job refuses the baseline architecture with a parameter cap of 1.
6. ``smoke``: a smoke run (the runner's own command and environment) returns a finite score.
7. ``determinism``: a second smoke run at the same seed gives the identical score.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.guard.contract import check_client_source
from engine.profile import Profile, ProfileError, load_profile
from engine.run.runner import job_command, run_job_retrying_stalls

PROBE = Path(__file__).resolve().with_name("probe.py")
CHECKS = ("profile", "contract", "flags", "subsets", "cap", "smoke", "determinism")
PROBE_TIMEOUT = 300


@dataclass(frozen=True)
class Verdict:
    check: str
    ok: bool | None  # None: skipped after an earlier failure
    message: str
    seconds: float = 0.0

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark} {self.check:<12} {self.message}"


class _Failed(Exception):
    """A check's one-line reason."""


def flag_sets(profile: Profile) -> list[tuple[str, dict]]:
    """(label, candidate args) for every flag list the engine can pass: baseline, bounds, choices."""
    sets: list[tuple[str, dict]] = [("baseline", {})]
    for name, arg in profile.mutable.items():
        values: list = []
        if arg.type in ("float", "int"):
            cast = int if arg.type == "int" else float
            values = [cast(arg.min), cast(arg.max)] + ([cast(0)] if arg.allow_zero else [])
        elif arg.type == "bool":
            values = [True, False]
        elif arg.choices:
            values = list(arg.choices)
        sets += [(f"{name}={value}", {name: value}) for value in values]
    sets += [(f"aggregator={agg}", {"aggregator": agg}) for agg in profile.aggregators.choices]
    return sets


def _child_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    # The workspace's own ``tasks`` package, not the engine checkout's.
    paths = [str(root), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **(extra or {})}


def _probe(root: Path, *argv: str, stdin: str = "") -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(PROBE), *argv],
        cwd=root,
        env=_child_env(root),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise _Failed(lines[-1] if lines else f"probe exited with code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class TaskCheck:
    """The checks of one profile in a workspace; ``run`` reports each verdict as it comes."""

    def __init__(self, root: Path, profile_name: str, work_dir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.profile_name = profile_name
        self.profile: Profile | None = None
        self.work_dir = work_dir or self.root / ".afr" / "taskcheck"
        self.scores: list[tuple[float, dict]] = []

    def run(self, report: Callable[[Verdict], None], progress: Callable[[str], None]) -> list[Verdict]:
        self.progress = progress
        verdicts, failed = [], False
        for name in CHECKS:
            if failed:
                verdict = Verdict(name, None, "skipped after an earlier failure")
            else:
                started = time.monotonic()
                try:
                    message = getattr(self, f"check_{name}")()
                    verdict = Verdict(name, True, message, time.monotonic() - started)
                except (_Failed, ProfileError) as error:
                    verdict = Verdict(name, False, str(error), time.monotonic() - started)
                    failed = True
            verdicts.append(verdict)
            report(verdict)
        return verdicts

    # -- the checks, cheapest first ------------------------------------------------------

    def check_profile(self) -> str:
        name = self.profile_name
        if not Path(name).is_absolute() and (self.root / name).is_file():
            name = str(self.root / name)  # a path relative to the workspace, wherever afr runs from
        self.profile = load_profile(self.root, name)
        return f"{self.profile.name}: valid, every path exists ({self.profile.task_dir})"

    def check_contract(self) -> str:
        client = self.root / self.profile.task_dir / "client.py"
        if not client.is_file():
            raise _Failed(f"{self.profile.task_dir}/client.py does not exist")
        problems = check_client_source(client.read_text(), f"{self.profile.task_dir}/client.py")
        if problems:
            raise _Failed(f"{problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
        return "client.py keeps the Client API contract"

    def check_flags(self) -> str:
        sets = flag_sets(self.profile)
        run_dir = self.work_dir / "flags"
        flag_lists = [job_command(self.root, self.profile, {}, run_dir, "sim", True)[3:]]
        flag_lists += [
            job_command(self.root, self.profile, args, run_dir, "sim", False)[3:] for _, args in sets
        ]
        labels = ["smoke budget"] + [label for label, _ in sets]
        self.progress(f"parsing {len(flag_lists)} flag lists with {self.profile.job}'s own parser")
        job = str(self.root / self.profile.task_dir / self.profile.job)
        for label, verdict in zip(
            labels, _probe(self.root, "args", job, stdin=json.dumps(flag_lists)), strict=True
        ):
            if not verdict["ok"]:
                raise _Failed(f"{self.profile.job} rejects the {label} flags: {verdict['error']}")
        return (
            f"{self.profile.job} accepts all {len(flag_lists)} flag lists (baseline, smoke, bounds, choices)"
        )

    def check_subsets(self) -> str:
        if not (self.root / self.profile.task_dir / "data.py").is_file():
            raise _Failed(f"{self.profile.task_dir}/data.py (the data bridge) does not exist")
        fixed = dict(self.profile.budget.values())
        if "data_root" in fixed:
            fixed["data_root"] = str(self.root / Path(str(fixed["data_root"])).expanduser())
        heldout = self.profile.heldout
        fraction, seed = (heldout.fraction, heldout.seed) if heldout else (0.5, 0)
        module = self.profile.task_dir.strip("/").replace("/", ".") + ".data"
        self.progress("loading every client's scored split: full, validation, held-out")
        sites = _probe(
            self.root,
            "subsets",
            module,
            str(self.profile.budget.n_clients),
            json.dumps(fixed),
            repr(fraction),
            str(seed),
        )
        for site in sites:
            if not site["partition"] or not (0 < site["validation"] < site["full"]):
                raise _Failed(
                    f"{site['site']}: validation ({site['validation']} rows) and held-out ({site['heldout']}) "
                    f"do not split its {site['full']} scored rows: the data bridge ignores the held-out subset"
                )
        sizes = ", ".join(f"{s['validation']}+{s['heldout']}" for s in sites)
        return f"validation + held-out partition every scored split ({sizes} rows)"

    def check_cap(self) -> str:
        run_dir = self.work_dir / "cap"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        command = job_command(self.root, self.profile, {}, run_dir, "sim", True)
        command[command.index("--max_model_params") + 1] = "1"
        self.progress("running the job with a parameter cap of 1")
        done = subprocess.run(
            command,
            cwd=self.root,
            env=_child_env(self.root),
            capture_output=True,
            text=True,
            timeout=self.profile.run.timeout_seconds,
        )
        if done.returncode == 0 or (run_dir / "job_result.json").exists():
            raise _Failed(
                f"{self.profile.job} ran an architecture over --max_model_params 1 instead of refusing it"
            )
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        return f"over-cap architecture refused ({lines[-1][:100] if lines else 'non-zero exit'})"

    def _smoke(self, number: int) -> tuple[float, dict]:
        run_dir = self.work_dir / f"smoke{number}"
        for old in (run_dir, *run_dir.parent.glob(f"{run_dir.name}-retry*")):  # an earlier check's tries
            shutil.rmtree(old, ignore_errors=True)
        subset = "validation" if self.profile.heldout else "full"
        self.progress(
            f"smoke run {number} (NVFlare simulator, seed {self.profile.budget.seed}, {subset} subset)"
        )

        def again(stalled) -> None:
            self.progress(f"smoke run {number} {stalled.status} ({stalled.error}); running it once more")

        # A job NVFlare left silent runs once more, as in a campaign: the stall is not the task's.
        result = run_job_retrying_stalls(self.root, self.profile, {}, run_dir, again, smoke=True, subset=subset)
        if result.status != "ok":
            raise _Failed(f"smoke run {number} {result.status}: {result.error} (log: {result.log_path})")
        if not math.isfinite(result.score):
            raise _Failed(f"smoke run {number} scored {result.score}, not a finite number")
        return result.score, result.per_site

    def check_smoke(self) -> str:
        self.scores.append(self._smoke(1))
        score, per_site = self.scores[0]
        return f"{self.profile.metric.name} = {score:.6f} over {len(per_site)} client(s)"

    def check_determinism(self) -> str:
        self.scores.append(self._smoke(2))
        (first, first_sites), (second, second_sites) = self.scores[:2]
        if first != second or first_sites != second_sites:
            raise _Failed(
                f"two smoke runs at seed {self.profile.budget.seed} differ ({first:.6f} vs {second:.6f}): "
                "seed everything from --seed and the site"
            )
        return f"identical score at seed {self.profile.budget.seed} ({first:.6f})"


def check_task(root: Path, profile_name: str, report, progress) -> bool:
    """Run every check, reporting as it goes; True when all pass."""
    return all(v.ok for v in TaskCheck(root, profile_name).run(report, progress))
