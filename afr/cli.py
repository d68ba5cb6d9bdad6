"""The ``afr`` command: its parser and entry point. Every action is a call into ``engine``; errors are one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from afr import evidence_commands, task_commands, tool_command, trajectory_commands
from afr.agent_options import add_agent_arguments
from afr.campaign_commands import (
    cmd_attach,
    cmd_data,
    cmd_diff,
    cmd_init,
    cmd_list,
    cmd_resume,
    cmd_run,
    cmd_status,
    cmd_validate,
)
from afr.common import HelpFormatter, UsageError, positive_float, positive_int
from afr.deploy_options import add_deployment_arguments
from afr.executor_options import add_executor_options
from engine import __version__
from engine.campaign.options import CampaignError
from engine.profile import ProfileError
from engine.store.ledger import LedgerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afr",
        description="afr: run and supervise agentic federated-learning research campaigns on NVIDIA FLARE.",
    )
    parser.add_argument("--version", action="version", version=f"afr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser("init", help="make a workspace repository from the bundled template")
    init.add_argument("dir", type=Path, help="the folder to make (new or empty)")
    init.add_argument("--exist-ok", action="store_true", help="succeed if DIR already is a workspace")
    init.set_defaults(handler=cmd_init)

    data = commands.add_parser("data", help="show a profile's federation: per client sizes and class balance")
    data.add_argument("profile", help="profile name (profiles/NAME.toml) or path")
    data.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one, else the bundle)",
    )
    data.add_argument("--json", action="store_true", help="print JSON instead of a table")
    data.add_argument(
        "--data_root", default=None, help="read the task's data here instead of budget.data_root"
    )
    data.set_defaults(handler=cmd_data)

    run = commands.add_parser("run", help="start a campaign")
    run.add_argument("--profile", default=None, help="profile name or path (default: fed_heart_disease)")
    run.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    run.add_argument(
        "--tag",
        default=None,
        help="campaign tag: [a-z0-9._-] with a YYYYMMDD date (default: HOST-PROFILE-DATE)",
    )
    run.add_argument("--model", default=None, help="LiteLLM model string, e.g. openai/gpt-4o-mini")
    run.add_argument("--api-base", default=None, help="OpenAI-compatible server, e.g. a local vLLM")
    run.add_argument("--fallback-model", default=None, help="LiteLLM model tried when --model keeps failing")
    run.add_argument("--max-cost", type=positive_float, default=None, help="USD; the campaign pauses there")
    add_agent_arguments(run)  # --proposer, --tool-calling/--no-tool-calling, --agent-cmd and its caps
    run.add_argument("--max-steps", type=positive_int, default=16, help="model calls per candidate (llm)")
    run.add_argument(
        "--max-reply-tokens", type=positive_int, default=2048, help="completion tokens per model call (llm)"
    )
    run.add_argument(
        "--max-candidates", type=positive_int, default=30, help="stop after this many candidates"
    )
    run.add_argument("--max-hours", type=positive_float, default=None, help="stop after this much wall time")
    run.add_argument(
        "--parallel",
        type=positive_int,
        default=None,
        help="run slots (default: the profile's [run].parallel, else one per visible GPU, else 1)",
    )
    run.add_argument(
        "--approval", choices=["auto", "manual"], default="auto", help="manual: each candidate waits for you"
    )
    run.add_argument("--seed", type=int, default=None, help="proposer seed (default: the profile's seed)")
    run.add_argument("--headless", action="store_true", help="console view instead of the cockpit")
    run.add_argument(
        "--detach", action="store_true", help="start the engine in the background; watch it with `afr attach`"
    )
    add_deployment_arguments(run)  # --env sim|poc|prod, and --startup-kit, --username, --sites for prod
    add_executor_options(run)
    run.add_argument(
        "--smoke", action="store_true", help="use the profile's smoke budget for every candidate"
    )
    run.add_argument(
        "--match", default=None, metavar="TAG", help="a same-budget control: TAG's profile, cap and budget"
    )
    run.add_argument(
        "--no-confirm", action="store_true", help="keep on the campaign seed alone (no confirm_seeds)"
    )
    run.set_defaults(handler=cmd_run)

    resume = commands.add_parser("resume", help="continue a campaign after a stop or crash")
    resume.add_argument("tag", nargs="?", default=None, help="campaign tag (default: the newest)")
    resume.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    resume.add_argument("--headless", action="store_true", help="console view instead of the cockpit")
    resume.add_argument(
        "--accept-environment",
        action="store_true",
        help="you changed the Python environment on purpose: record it as the campaign's and go on",
    )
    add_executor_options(resume, resume=True)
    resume.add_argument("--detach", action="store_true", help="continue in the background")
    resume.add_argument("--max-candidates", type=positive_int, default=None, help="raise (or lower) the cap")
    resume.add_argument(
        "--max-hours", type=positive_float, default=None, help="raise (or lower) the time cap"
    )
    resume.set_defaults(handler=cmd_resume)

    status = commands.add_parser("status", help="a campaign's progress")
    status.add_argument("tag", nargs="?", default=None, help="campaign tag (default: the newest)")
    status.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--plot", action="store_true", help="draw the running-best plot in the terminal")
    status.set_defaults(handler=cmd_status)

    diff = commands.add_parser("diff", help="a candidate's change against its parent, and its args")
    diff.add_argument("candidate", help="candidate id, e.g. c007, or a literature row, e.g. L001")
    diff.add_argument("--tag", default=None, help="campaign tag (default: the newest)")
    diff.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    diff.set_defaults(handler=cmd_diff)

    validate = commands.add_parser("validate", help="run the guard on the workspace's uncommitted changes")
    validate.add_argument("--profile", default="fed_heart_disease", help="profile name or path")
    validate.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    validate.set_defaults(handler=cmd_validate)

    listing = commands.add_parser("list", help="campaigns in this workspace")
    listing.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    listing.set_defaults(handler=cmd_list)

    attach = commands.add_parser("attach", help="open the cockpit on a campaign running in the background")
    attach.add_argument("tag", nargs="?", default=None, help="campaign tag (default: the newest)")
    attach.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    attach.set_defaults(handler=cmd_attach)

    evidence_commands.add_commands(commands, positive_int)  # repeat, heldout, compare, report
    tool_command.add_command(commands)  # the agent's read-only tools, for external agents
    task_commands.add_commands(commands)  # task new, task check
    trajectory_commands.add_command(commands, positive_int)
    for subcommand in commands.choices.values():
        subcommand.formatter_class = HelpFormatter  # every option's default in --help
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from engine.agent.provider import PreflightError
    from engine.control.server import ControlError

    try:
        return args.handler(args)
    except (
        ControlError,
        UsageError,
        ProfileError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
        LedgerError,
        CampaignError,
        PreflightError,
    ) as error:
        print(f"afr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("afr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
