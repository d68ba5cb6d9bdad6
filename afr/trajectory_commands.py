"""``afr trajectories``: K independent campaigns of one profile and budget, then their comparison."""

from __future__ import annotations

import argparse
from pathlib import Path

from afr.common import UsageError, gpu_ids, workspace_root
from engine.control.events import Event, EventType


def add_command(commands, positive_int) -> None:
    parser = commands.add_parser(
        "trajectories",
        help="run K independent campaigns (proposer seeds differ) and compare the mechanisms they kept",
    )
    parser.add_argument("--profile", default="fed_heart_disease", help="profile name or path")
    parser.add_argument("--k", type=positive_int, default=3, help="how many trajectories")
    parser.add_argument("--tag", default=None, help="base tag; trajectories are <tag>-t1 .. <tag>-tK")
    parser.add_argument("--proposer", choices=["scripted", "tpe", "llm"], default="tpe")
    parser.add_argument("--model", default=None, help="LiteLLM model string (llm proposer)")
    parser.add_argument("--api-base", default=None)
    parser.add_argument("--max-candidates", type=positive_int, default=30, help="per trajectory")
    parser.add_argument("--max-hours", type=float, default=None, help="per trajectory")
    parser.add_argument("--parallel", type=positive_int, default=None, help="run slots per trajectory")
    parser.add_argument("--seed", type=int, default=None, help="first trajectory's proposer seed")
    parser.add_argument("--smoke", action="store_true", help="the profile's smoke budget")
    parser.add_argument("--no-confirm", action="store_true", help="keep on the campaign seed alone")
    parser.add_argument("--workspace", type=Path, default=None)
    parser.set_defaults(handler=cmd_trajectories)


def _print_event(tag: str, event: Event) -> None:
    data = event.data
    if event.type is EventType.CANDIDATE_REVIEWED:
        score = "" if data.get("score") is None else f" {data['score']:.4f}"
        print(f"  {tag} {data['id']} {data['status']}{score}  {data.get('description', '')[:70]}", flush=True)
    elif event.type is EventType.CANDIDATE_CONFIRMING and data.get("phase") == "done":
        verdict = "confirmed" if data.get("confirmed") else "not confirmed"
        print(f"  {tag} {data['id']} {verdict} against {data.get('incumbent')}", flush=True)


def cmd_trajectories(args: argparse.Namespace) -> int:
    from engine.agent import build_proposer
    from engine.campaign.options import CampaignError, CampaignOptions
    from engine.campaign.status import default_tag
    from engine.evidence import runs as evidence
    from engine.evidence.compare import compare_rows, format_compare
    from engine.evidence.trajectories import format_mechanism_table, mechanism_table, run_trajectories
    from engine.profile import load_profile

    root = workspace_root(args.workspace)
    profile = load_profile(root, args.profile)
    if args.proposer == "llm" and not args.model:
        raise UsageError("the llm proposer needs --model")
    gpus = gpu_ids()
    options = CampaignOptions(
        max_candidates=args.max_candidates,
        max_hours=args.max_hours,
        parallel=args.parallel or profile.run.parallel or len(gpus) or 1,
        smoke=args.smoke,
        seed=profile.budget.seed if args.seed is None else args.seed,
        proposer=args.proposer,
        model=args.model,
        api_base=args.api_base,
        confirm=not args.no_confirm,
    )
    base = args.tag or default_tag(root, profile.name)
    try:
        tags = run_trajectories(
            root,
            profile,
            base,
            args.k,
            options,
            build_proposer,
            evidence.RUNNER,
            gpus,
            _print_event,
            report=lambda line: print(f"afr: {line}", flush=True),
        )
    except CampaignError as error:
        raise UsageError(str(error)) from None
    print()
    print(format_compare(compare_rows(root, tags)))
    print()
    print(format_mechanism_table(mechanism_table([evidence.open_campaign(root, t) for t in tags]), tags))
    print(
        f"\nafr: next: `afr repeat --top 1 TAG` for each of {' '.join(tags)}, then `afr compare {' '.join(tags)}`"
    )
    return 0
