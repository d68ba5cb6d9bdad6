"""The trusted step counter, engine side: the FIFO the job's processes report to, and the check.

``engine/run/stepcount_site/sitecustomize.py`` runs in every process of a job (the folder is
the job's ``PYTHONPATH``) and counts optimiser steps per site and round through torch's
global step hook. It writes to a FIFO the engine made in the campaign's trusted folder,
which no sandbox can otherwise see: the job can add lines, never take one back. After the
run, ``budget_problem`` compares the counts with what the profile's ``[local_work]``
declares and names the first excess as a one-line ``budget: ...`` reason.
"""

from __future__ import annotations

import math
import os
import select
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from engine.profile import Profile, Scalar

SITE_DIR = Path(__file__).with_name("stepcount_site")  # holds only sitecustomize.py
FIFO_VAR = "AFR_STEP_LOG"  # read by stepcount_site/sitecustomize.py
MAX_KEYS = 10_000  # a flood of forged keys must not eat the engine's memory
OUTSIDE = "-"  # no site (job.py, the server) or no round yet


@dataclass
class StepCounts:
    """Optimiser steps per site and round (``"-"``: none yet, ``"eval"``: an evaluation task)."""

    steps: dict[str, dict[str, int]] = field(default_factory=dict)
    tampered: list[str] = field(default_factory=list)  # "site-2: hook-removed"

    def to_dict(self) -> dict:
        return {"steps": self.steps, "tampered": self.tampered}


@dataclass(frozen=True)
class DeclaredWork:
    """What the candidate's run may do: steps per round per site, and rounds."""

    per_round: dict[str, int | None]  # site -> optimiser steps in one round (None: rows unknown, no bound)
    rounds: int
    unit: str  # "local_steps = 100" or "local_epochs = 1 (29 steps of batch 32 on site-1)"


def declared_work(
    profile: Profile, args: dict[str, Scalar], smoke: bool, train_sizes: dict[str, int]
) -> DeclaredWork | None:
    """The run's declared local work from the profile's ``[local_work]``, or None without one.

    The values are the ones the job gets (budget, baseline, the candidate's args, smoke
    overrides), as in ``Profile.job_flags``. Epochs become steps as the bundled clients count
    them: ``max(1, ceil(epochs * train_rows / batch_size))``.
    """
    work = profile.local_work
    if work is None:
        return None
    values: dict = dict(profile.budget.values())
    values.update(profile.baseline)
    values.update(args)
    if smoke:
        values.update(profile.smoke)
    amount = float(values[work.arg])
    sites = [f"site-{i}" for i in range(1, profile.budget.n_clients + 1)]
    if work.unit == "steps":
        per_round = {site: int(amount) for site in sites}
        unit = f"{work.arg} = {int(amount)}"
    else:
        batch = int(values["batch_size"])
        per_round = {  # a site afr exported no rows for (not scored) has no known bound
            site: max(1, math.ceil(amount * train_sizes[site] / batch)) if train_sizes.get(site) else None
            for site in sites
        }
        unit = f"{work.arg} = {amount:g} epochs of batch {batch}"
    return DeclaredWork(per_round, int(values["num_rounds"]), unit)


def budget_problem(counts: StepCounts, declared: DeclaredWork) -> str:
    """The first way ``counts`` break ``declared``, as ``budget: ...``; empty when they do not."""
    if counts.tampered:
        return f"budget: the trusted step counter was tampered with ({', '.join(counts.tampered[:3])})"
    for site, rounds in sorted(counts.steps.items(), key=lambda item: _order(item[0])):
        if site == OUTSIDE:
            return (
                f"budget: {sum(rounds.values())} optimiser steps outside any site's training "
                "(job.py or the server process), declared 0"
            )
        if site not in declared.per_round:
            return f"budget: {sum(rounds.values())} optimiser steps on unknown site {site}"
        for label, steps in sorted(rounds.items(), key=lambda item: _order(item[0])):
            if label == OUTSIDE:
                return f"budget: {site} took {steps} optimiser steps before its first round, declared 0"
            if label == "eval":
                return f"budget: {site} took {steps} optimiser steps in an evaluation task, declared 0"
            if not label.isdigit() or int(label) >= declared.rounds:
                return f"budget: {site} took {steps} optimiser steps in round {label}, declared {declared.rounds} rounds"
            bound = declared.per_round[site]
            if bound is not None and steps > bound:
                return (
                    f"budget: {site} took {steps} optimiser steps in round {label}, "
                    f"declared {bound}"
                )
    for site in declared.per_round:
        for label in map(str, range(declared.rounds)):
            if not counts.steps.get(site, {}).get(label):
                return (
                    f"budget: no optimiser steps were counted for {site} in round {label} "
                    "(the trusted step counter did not run there, or was bypassed)"
                )
    return ""


def _order(name: str) -> tuple[int, str]:
    """``site-2`` before ``site-10``, round ``2`` before ``10``; names without a number first."""
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else -1, name)


class StepLog:
    """A FIFO the job's processes write to, drained by a thread while the job runs.

    ``env`` and ``mounts`` go into the job's sandbox spec; ``close()`` (after the job and
    every process of it ended) returns the counts.
    """

    def __init__(self, parent: Path) -> None:
        self.folder = Path(parent) / uuid.uuid4().hex
        self.folder.mkdir(parents=True)
        self.path = self.folder / "steps.fifo"
        os.mkfifo(self.path, 0o600)
        # The engine holds a write end too: the reader never sees end-of-file while jobs come and go.
        self._read = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._write = os.open(self.path, os.O_WRONLY)
        self._stop_read, self._stop = os.pipe()  # not the FIFO: a job cannot write "stop" into it
        self._latest: dict[tuple[str, str, str], int] = {}  # (pid, site, round) -> running count
        self._tampered: list[str] = []
        self._added: list[StepCounts] = []  # counted elsewhere (a remote executor's worker)
        self._thread = threading.Thread(target=self._drain, name="afr-step-log", daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(SITE_DIR), FIFO_VAR: str(self.path)}

    @property
    def mounts(self) -> tuple[Path, ...]:
        return (SITE_DIR, self.path)

    def _drain(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self._read, self._stop_read], [], [])
            stopping = self._stop_read in ready
            while True:  # everything written so far (all of it once the job has ended)
                try:
                    chunk = os.read(self._read, 65536)
                except BlockingIOError:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._take(line.decode(errors="replace").split())
            if stopping:
                return

    def _take(self, parts: list[str]) -> None:
        if len(parts) == 5 and parts[0] == "S" and parts[4].isdigit():
            key = (parts[1], parts[2], parts[3])
            if key in self._latest or len(self._latest) < MAX_KEYS:
                self._latest[key] = max(self._latest.get(key, 0), int(parts[4]))
        elif len(parts) == 4 and parts[0] == "T" and len(self._tampered) < 20:
            self._tampered.append(f"{parts[2]}: {parts[3]}")

    def add(self, counts: StepCounts) -> None:
        """Counts of this run's job taken on another machine (a Ray worker's own step log)."""
        self._added.append(counts)

    def close(self) -> StepCounts:
        os.write(self._stop, b"x")
        self._thread.join(timeout=10)
        for fd in (self._read, self._write, self._stop_read, self._stop):
            os.close(fd)
        shutil.rmtree(self.folder, ignore_errors=True)
        counts = StepCounts()
        for (_, site, label), steps in sorted(self._latest.items()):
            per_site = counts.steps.setdefault(site, {})
            per_site[label] = per_site.get(label, 0) + steps  # processes add up; lines of one process do not
        tampered = list(self._tampered)
        for added in self._added:
            for site, rounds in added.steps.items():
                per_site = counts.steps.setdefault(site, {})
                for label, steps in rounds.items():
                    per_site[label] = per_site.get(label, 0) + int(steps)
            tampered += added.tampered
        counts.tampered = sorted(set(tampered))
        return counts
