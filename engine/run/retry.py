"""Running a job again after it stalled: a stall is NVFlare's failure, not the candidate's.

A job that went silent for the profile's ``stall_seconds`` runs once more. NVFlare's port race
(two simulator workers drawing the same port) shows within seconds of the start, and several
simulators starting side by side can lose it twice in a row, so it gets a few more tries.
Each try writes its own run directory: ``c007``, ``c007-retry``, ``c007-retry2``, ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from engine.run.jobcommand import RunResult

STALL_RETRIES = 1
PORT_RACE_RETRIES = 3
PORT_RACE_ERROR = "a simulator worker found its port taken (NVFlare's port race): the job stalled"
_RETRY_SUFFIX = re.compile(r"-retry\d*$")


def first_try_name(run_dir: Path | str) -> str:
    """The run directory's name without its retry suffix."""
    return _RETRY_SUFFIX.sub("", Path(run_dir).name)


def run_retrying_stalls(
    run: Callable[[Path], RunResult],
    run_dir: Path,
    on_retry: Callable[[RunResult], None] | None = None,
) -> tuple[RunResult, Path]:
    """``run(run_dir)`` until it does not stall, within the retry limits: the last result and
    the run directory it wrote."""
    tries = 0
    while True:
        result = run(run_dir)
        limit = PORT_RACE_RETRIES if result.error == PORT_RACE_ERROR else STALL_RETRIES
        if result.status != "stalled" or tries >= limit:
            return result, run_dir
        tries += 1
        if on_retry is not None:
            on_retry(result)
        run_dir = run_dir.with_name(f"{first_try_name(run_dir)}-retry{tries if tries > 1 else ''}")
