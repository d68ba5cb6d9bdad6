"""Finding and stopping every process of a run by the token its environment carries.

NVFlare's simulator puts its server and workers in process groups of their own, and they
outlive a killed parent, so afr marks each job's environment (``RUN_TOKEN_VAR``) and finds
the whole family by that mark rather than by process group or parentage.
"""

from __future__ import annotations

import contextlib
import subprocess

import psutil

from engine.run.jobcommand import RUN_TOKEN_VAR

GRACE_SECONDS = 10.0


def processes_of_run(token: str) -> list[psutil.Process]:
    """Every live process started for the run marked ``token``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(RUN_TOKEN_VAR) == token:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def stop_run(process: subprocess.Popen, token: str, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every process of the run, wait ``grace`` seconds, then SIGKILL the rest."""
    family = processes_of_run(token)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    process.poll()
