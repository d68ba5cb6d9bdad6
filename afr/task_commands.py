"""``afr task new`` and ``afr task check``: bring your own task (argparse wiring and printing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from afr.common import workspace_root


def add_commands(commands) -> None:
    """Register ``afr task {new,check}`` on ``afr``'s subparsers."""
    task = commands.add_parser("task", help="scaffold a task and check it against the task contract")
    actions = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)

    new = actions.add_parser("new", help="write profiles/NAME.toml and tasks/NAME/ (template or --from TASK)")
    new.add_argument("name")
    new.add_argument("--from", dest="source", default=None, help="copy this task in tasks/, names rewritten")
    new.add_argument("--workspace", type=Path, default=None)
    new.set_defaults(handler=cmd_task_new)

    check = actions.add_parser("check", help="check a profile's task: flags, contract, subsets, smoke runs")
    check.add_argument("profile", help="a profile name or path (profiles/NAME.toml)")
    check.add_argument("--workspace", type=Path, default=None)
    check.set_defaults(handler=cmd_task_check)


def cmd_task_new(args: argparse.Namespace) -> int:
    from engine.taskkit.scaffold import new_task

    root = workspace_root(args.workspace)
    made = new_task(root, args.name, args.source)
    origin = "the minimal template" if made.source == "template" else f"tasks/{made.source}"
    print(f"wrote {made.profile.relative_to(root)} and {made.task_dir.relative_to(root)}/ from {origin}")
    print(f"next: afr task check {made.profile.relative_to(root)}")
    return 0


def cmd_task_check(args: argparse.Namespace) -> int:
    from engine.taskkit.check import CHECKS, TaskCheck

    root = workspace_root(args.workspace)
    count = len(CHECKS)
    position = [0]

    def progress(message: str) -> None:
        print(f"     ... {message}", flush=True)

    def report(verdict) -> None:
        position[0] += 1
        seconds = f" ({verdict.seconds:.1f} s)" if verdict.seconds >= 1 else ""
        print(f"[{position[0]}/{count}] {verdict.line()}{seconds}", flush=True)

    verdicts = TaskCheck(root, args.profile).run(report, progress)
    failed = [v for v in verdicts if v.ok is False]
    if failed:
        print(f"afr: task check failed: {failed[0].check}: {failed[0].message}", file=sys.stderr)
        return 1
    print(f"all {count} checks passed")
    return 0
