"""Where a run's NVFlare job executes: on this machine (``local``) or as a task on a Ray cluster (``ray``).

An executor is a callable with ``run_job``'s signature, so campaigns, confirmations, repeats
and held-out runs take it wherever they took ``run_job`` (``Campaign(run_fn=...)``,
``evidence.run_jobs(run_fn=...)``). The engine, ledgers, git and trusted evaluator stay local
whatever the executor; a remote one only moves the sandboxed job. An executor may also offer
``cancel(token)`` (kill a running job: the human aborted it) and ``sweep(tokens)`` (make sure
nothing of those runs is left on any node: a resumed engine cleaning up after a killed one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# No Ray at import time: ray_executor imports Ray only when a Ray executor is built.
from engine.run import prod
from engine.run.ray_executor import PLACED, ExecutorError, RayExecutor
from engine.run.runner import RunResult, run_job

__all__ = ["EXECUTORS", "PLACED", "Executor", "ExecutorError", "build_executor", "cancel_run", "sweep_runs"]

EXECUTORS = ("local", "ray")

Executor = Callable[..., RunResult]


def build_executor(name: str, ray_address: str | None = None) -> Executor:
    """The executor called ``name``; connecting to a Ray cluster happens here, before any candidate runs."""
    if name == "local":
        if ray_address:
            raise ExecutorError("--ray-address needs --executor ray")
        return run_job
    if name == "ray":
        return RayExecutor.connect(ray_address)  # Ray, an optional extra, is imported only here
    raise ExecutorError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")


def cancel_run(executor: Executor, token: str | None) -> None:
    """Ask ``executor`` to kill the run marked ``token``, if it runs jobs elsewhere; a job on an
    NVFlare deployment (``--env prod``) is aborted there."""
    if not token:
        return
    prod.abort(token)
    cancel = getattr(executor, "cancel", None)
    if cancel is not None:
        cancel(token)


def sweep_runs(executor: Executor, tokens: Iterable[str]) -> None:
    """Ask ``executor`` to kill whatever is left of the runs marked ``tokens`` on its nodes."""
    sweep = getattr(executor, "sweep", None)
    tokens = [token for token in tokens if token and token != "-"]
    if sweep is not None and tokens:
        sweep(tokens)
