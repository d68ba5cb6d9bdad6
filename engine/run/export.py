"""Running a candidate's ``job.py`` in export mode, in the run sandbox.

The trusted launch (``engine.run.launch``) and a deployment run (``engine.run.prod``) both
have the candidate's own code write its NVFlare job folder and nothing else: one sandboxed
process, marked with a run token so that whatever it starts is found and stopped, under a
time limit (a ``job.py`` that runs the job itself instead of exporting it is caught by it).
Each caller then reads and checks the folder by its own rules.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.run.jobcommand import RUN_TOKEN_VAR
from engine.run.processes import stop_run
from engine.run.sandbox import SandboxSpec, wrap
from engine.store.redact import redact


@dataclass(frozen=True)
class ExportRun:
    """How the export process ended; ``output`` is its redacted stdout and stderr."""

    output: str
    returncode: int | None
    timed_out: bool
    sandbox: str  # the sandbox it ran in ("bwrap" or "none")

    def last_line(self, containing: str = "") -> str:
        """The last non-blank output line containing ``containing`` (else the last one)."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return next((line for line in reversed(lines) if containing and containing in line), lines[-1] if lines else "")


def run_export(
    command: list[str],
    spec: SandboxSpec,
    sandbox: str | None,
    timeout: float,
    on_start: Callable[[str], None] | None = None,
) -> ExportRun:
    """Run ``command`` (the job command with ``--export_dir``) sandboxed by ``spec``; never raises
    for the process's own failure. ``on_start(token)`` names the run while it lives."""
    token = uuid.uuid4().hex
    spec = replace(spec, env={**spec.env, "PYTHONUNBUFFERED": "1", RUN_TOKEN_VAR: token})
    boxed = wrap(command, spec, sandbox)
    process = subprocess.Popen(
        boxed.argv,
        cwd=boxed.cwd,
        env=boxed.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if on_start is not None:
        on_start(token)
    timed_out = False
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_run(process, token, grace=1.0)
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            process.kill()
        output, _ = process.communicate(timeout=10)
    stop_run(process, token, grace=1.0)  # anything it left (without bwrap there is no PID namespace)
    return ExportRun(redact(output or ""), process.returncode, timed_out, boxed.sandbox)
