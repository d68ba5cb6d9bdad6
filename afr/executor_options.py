"""``--executor`` and ``--ray-address``: where ``afr run``, ``resume``, ``repeat`` and ``heldout`` run jobs."""

from __future__ import annotations

import argparse

from engine.run.executors import EXECUTORS, Executor, build_executor


def add_executor_options(parser: argparse.ArgumentParser, resume: bool = False) -> None:
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where each NVFlare job runs: this machine, or a task on a Ray cluster "
        + ("(default: what the campaign was started with)" if resume else "(default: local)"),
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="the Ray cluster, HOST:PORT (default: auto, the cluster started on this machine)",
    )


def chosen_executor(args: argparse.Namespace, recorded: dict | None = None) -> tuple[str, str | None]:
    """The executor name and Ray address: the command line's, else what the campaign recorded."""
    recorded = recorded or {}
    name = args.executor or recorded.get("executor") or "local"
    address = args.ray_address or (recorded.get("ray_address") if name == "ray" else None)
    return name, address


def executor_for(name: str, address: str | None, default: Executor) -> Executor:
    """``default`` (``run_job``, or what a test put there) for local runs, else the connected executor."""
    if name == "local" and not address:
        return default
    return build_executor(name, address)
