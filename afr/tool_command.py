"""``afr tool NAME [JSON]``: the agent's read-only tools for an external coding agent.

A command run by ``--proposer command`` finds ``$AFR_TOOL`` in its environment (this command
with the workspace and campaign filled in) and gets the same answers as the embedded agent:
records, diffs, per-round metrics, job-log tails, evidence, the bibliography, the profile.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from afr.common import UsageError

READ_ONLY = (
    "list_surface",
    "read_file",
    "get_ledger",
    "get_profile",
    "search_literature",
    "list_candidates",
    "get_candidate",
    "get_candidate_diff",
    "get_round_metrics",
    "get_job_log",
    "get_evidence",
)


def add_command(commands) -> None:
    tool = commands.add_parser("tool", help="run one of the agent's read-only tools (for external agents)")
    tool.add_argument("name", choices=READ_ONLY)
    tool.add_argument("arguments", nargs="?", default="{}", help="a JSON object of the tool's arguments")
    tool.add_argument("--workspace", type=Path, default=None)
    tool.add_argument("--tag", default=None)
    tool.set_defaults(handler=cmd_tool)


def cmd_tool(args: argparse.Namespace) -> int:
    from afr.common import workspace_root
    from engine.agent.base import ProposalContext
    from engine.agent.tools import AgentWorkspace
    from engine.campaign.options import campaign_dir
    from engine.campaign.status import resolve_tag
    from engine.profile import load_profile
    from engine.store.ledger import Ledger
    from engine.store.workspace import CampaignRepo

    root = workspace_root(
        args.workspace or (Path(os.environ["AFR_WORKSPACE"]) if "AFR_WORKSPACE" in os.environ else None)
    )
    tag = resolve_tag(root, args.tag or os.environ.get("AFR_CAMPAIGN"))
    meta = json.loads((campaign_dir(root, tag) / "campaign.json").read_text())
    profile = load_profile(root, meta["profile"])
    ledger = Ledger(campaign_dir(root, tag))
    records = list(ledger.latest_candidates().values())
    context = ProposalContext(
        profile,
        ledger.rows(),
        records,
        {},
        len(records),
        0,
        root=root,
        parent=CampaignRepo(root, tag).head(),
        tag=tag,
    )
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as error:
        raise UsageError(f"arguments are not valid JSON ({error.msg})") from None
    result = AgentWorkspace(context).call(args.name, arguments)
    print(result)
    return 1 if result.startswith("error:") else 0
