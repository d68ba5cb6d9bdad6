"""Which proposer a command line asks for, and the external agent's options, with one-line errors."""

from __future__ import annotations

import argparse

from afr.common import UsageError, positive_float, positive_int

PROPOSERS = ("scripted", "tpe", "llm", "command")


def add_agent_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--proposer",
        choices=PROPOSERS,
        default=None,
        help="scripted (default), tpe (Optuna), llm (implied by --model) or command (implied by --agent-cmd)",
    )
    run.add_argument(
        "--tool-calling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force native tool calls on or off (default: LiteLLM's model capabilities decide)",
    )
    run.add_argument(
        "--agent-cmd",
        default=None,
        metavar="CMD",
        help='an external coding agent run non-interactively in each candidate\'s worktree, e.g. "codex exec"',
    )
    run.add_argument(
        "--agent-timeout", type=positive_float, default=1800.0, help="seconds per agent run (command)"
    )
    run.add_argument(
        "--agent-max-output",
        type=positive_int,
        default=1_000_000,
        help="bytes of agent output kept (command)",
    )
    run.add_argument(
        "--agent-env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this environment variable (e.g. a provider key) to the agent; repeatable",
    )


def resolve_proposer(args: argparse.Namespace) -> str:
    """``--model`` implies llm and ``--agent-cmd`` implies command; a contradiction is an error."""
    named = args.proposer
    implied = [name for name, flag in (("llm", args.model), ("command", args.agent_cmd)) if flag]
    if len(implied) > 1:
        raise UsageError("--model (llm) and --agent-cmd (command) select different proposers; give one")
    if named and implied and implied[0] != named:
        flag = "--model" if implied[0] == "llm" else "--agent-cmd"
        raise UsageError(
            f"{flag} selects the {implied[0]} proposer; it cannot be used with --proposer {named}"
        )
    proposer = named or (implied[0] if implied else "scripted")
    if proposer == "command" and not args.agent_cmd:
        raise UsageError('--proposer command needs --agent-cmd "COMMAND"')
    return proposer
