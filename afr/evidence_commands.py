"""The evidence commands of ``afr``: repeat, heldout, compare, report (argparse wiring and printing)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from afr.common import UsageError, gpu_ids, workspace_root
from afr.deploy_options import add_deployment_arguments, deployment_from_args
from afr.executor_options import add_executor_options, chosen_executor, executor_for
from engine.evidence import runs as evidence
from engine.evidence.runs import EvidenceError
from engine.run.policy import require_sandbox
from engine.wording import counted


def add_commands(commands, positive_int) -> None:
    """Register the evidence subcommands on ``afr``'s subparsers."""
    repeat = commands.add_parser(
        "repeat", help="rerun the top kept candidates and the baseline over matched seeds"
    )
    repeat.add_argument("tag", nargs="?", default=None, help="campaign tag (default: the newest)")
    repeat.add_argument("--top", type=positive_int, default=1, help="how many kept candidates (best first)")
    repeat.add_argument(
        "--seeds",
        default=None,
        help="comma-separated, e.g. 42,43,44,45,46 (default: the profile's repeat seeds)",
    )
    repeat.add_argument(
        "--parallel", type=positive_int, default=None, help="runs at once (default: the campaign's width)"
    )
    add_deployment_arguments(repeat, default_env=None)  # confirm a simulator finding on a real federation
    repeat.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    add_executor_options(repeat, resume=True)
    repeat.set_defaults(handler=cmd_repeat)

    heldout = commands.add_parser(
        "heldout", help="score the selected candidate and the baseline on the held-out subset"
    )
    heldout.add_argument("tag", nargs="?", default=None, help="campaign tag (default: the newest)")
    heldout.add_argument("--candidate", default=None, help="default: the best kept candidate")
    heldout.add_argument("--seeds", default=None, help="comma-separated (default: the budget seed)")
    heldout.add_argument(
        "--parallel", type=positive_int, default=None, help="runs at once (default: the campaign's width)"
    )
    add_deployment_arguments(heldout, default_env=None)
    heldout.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    add_executor_options(heldout, resume=True)
    heldout.set_defaults(handler=cmd_heldout)

    compare = commands.add_parser(
        "compare", help="one table comparing campaigns (e.g. a model and its HPO control)"
    )
    compare.add_argument("tags", nargs="+", help="campaign tags, side by side")
    compare.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(handler=cmd_compare)

    report = commands.add_parser(
        "report", help="write reports/<tag>-report.md and progress.png, committed to the campaign branch"
    )
    report.add_argument("tag", nargs="?", default=None, help="campaign tag (default: the newest)")
    report.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="the workspace (default: the nearest one from the current folder upward)",
    )
    report.add_argument("--no-commit", action="store_true", help="write the files only")
    report.set_defaults(handler=cmd_report)


def _root(args: argparse.Namespace) -> Path:
    return workspace_root(args.workspace)


def _gpus() -> list[str]:
    return gpu_ids()


def _warn_if_running(campaign: evidence.CampaignView) -> None:
    from engine.campaign.status import last_state

    state = last_state(campaign.directory)
    if state not in ("finished", "stopped", "new"):
        print(
            f"afr: note: campaign {campaign.tag} is {state}; its runs and these share the machine",
            flush=True,
        )


def cmd_repeat(args: argparse.Namespace) -> int:
    campaign = evidence.open_campaign(_root(args), args.tag)
    require_sandbox(campaign.profile)  # [run] sandbox = "required": refuse before anything runs
    seeds = evidence.parse_seeds(args.seeds, campaign.profile.repeat.seeds, minimum=2)
    jobs = evidence.repeat_jobs(campaign, args.top, seeds)
    _warn_if_running(campaign)
    kept = len(campaign.kept())
    if kept < args.top:
        print(
            f"afr: note: {campaign.tag} kept only {counted(kept, 'candidate')} besides the baseline",
            flush=True,
        )
    print(
        f"afr: repeat {campaign.tag}: baseline and top {args.top} over seeds {','.join(map(str, seeds))} "
        f"(validation subset; {len(jobs)} runs)",
        flush=True,
    )
    _run(campaign, jobs, args.parallel, "validation", args, _executor(args, campaign))
    return 0


def cmd_heldout(args: argparse.Namespace) -> int:
    campaign = evidence.open_campaign(_root(args), args.tag)
    require_sandbox(campaign.profile)
    seeds = evidence.parse_seeds(args.seeds, [campaign.profile.budget.seed])
    jobs = evidence.heldout_jobs(campaign, seeds, args.candidate)
    _warn_if_running(campaign)
    selected = jobs[-1].record
    share = campaign.profile.heldout.fraction
    print(
        f"afr: held-out check of {campaign.tag}: {selected['id']} and baseline {jobs[0].record['id']} "
        f"on the held-out {share:.0%} of each client's evaluation split, seeds {','.join(map(str, seeds))}",
        flush=True,
    )
    _run(campaign, jobs, args.parallel, "heldout", args, _executor(args, campaign))
    return 0


def _executor(args: argparse.Namespace, campaign: evidence.CampaignView):
    """The campaign's executor unless the command line names one (a Ray campaign's evidence runs on Ray)."""
    name, address = chosen_executor(args, campaign.options)
    return executor_for(name, address, evidence.RUNNER)


def _run(
    campaign: evidence.CampaignView,
    jobs: list[evidence.Job],
    parallel: int | None,
    subset: str,
    args: argparse.Namespace | None = None,
    run_fn=None,
) -> None:
    """Run the jobs (the campaign's parallel width unless given), then print their statistics."""
    started = time.monotonic()
    width = parallel or int(campaign.options.get("parallel", 1) or 1)
    env = getattr(args, "env", None)
    deployment = deployment_from_args(args) if env else None
    if deployment is not None:
        from engine.run.deployment import Deployment

        Deployment.of(deployment).profile_for(campaign.profile)  # --sites must fit the profile
    if env == "prod" or (env is None and campaign.options.get("env") == "prod"):
        print("afr: on the real NVFlare deployment: scored by its sites (prod)", flush=True)
    evidence.run_jobs(
        campaign,
        jobs,
        run_fn or evidence.RUNNER,
        width,
        _gpus(),
        report=lambda line: print(f"  {line}", flush=True),
        env=env,
        deployment=deployment,
    )
    _print_evidence(campaign, jobs, subset)
    print(f"afr: evidence in {campaign.evidence.path} ({evidence.elapsed(started)})")


def _print_evidence(campaign: evidence.CampaignView, jobs: list[evidence.Job], subset: str) -> None:
    """The statistics of exactly the runs this command asked for, from evidence.tsv."""
    wanted = {job.key for job in jobs}
    rows = [r for r in campaign.evidence.rows() if (r.candidate, r.subset, r.seed) in wanted]
    entries = evidence.evidence_by_candidate(rows)
    print()
    for line in evidence.format_summary_table(entries, subset):
        print(line)
    baseline_id = jobs[0].record["id"]
    found = evidence.comparisons(entries, campaign.profile.maximize)
    for comparison in found:
        print(evidence.format_comparison(comparison, baseline_id))
        if subset == "heldout":
            record = campaign.records[comparison.candidate]
            gain = record["score"] - campaign.baseline()["score"]
            survives = evidence.heldout_survives(comparison)
            print(
                f"campaign (validation subset, seed {campaign.profile.budget.seed}): gain {gain:+.4f}; "
                f"held-out: {comparison.paired.difference.mean:+.4f} -> the gain "
                f"{'survives' if survives else 'does NOT survive'} on held-out data"
            )
    if not found:
        raise EvidenceError("no candidate and baseline run succeeded on a common seed; see the runs above")


MATCHED_FIELDS = ("budget", "smoke", "heldout", "metric")


def apply_match(root: Path, args: argparse.Namespace) -> None:
    """Make ``afr run --match TAG`` a same-budget scalar-HPO control of campaign TAG.

    The control takes TAG's profile, candidate cap, time cap, smoke flag, environment and
    proposer seed; it refuses when the profile's budget changed since TAG started, since the
    comparison would then be between different budgets.
    """
    from engine.profile import load_profile

    if args.proposer != "scripted":
        raise UsageError("--match runs the scalar-HPO control: use it with --proposer scripted")
    matched = evidence.open_campaign(root, args.match)
    name = matched.profile.name
    if args.profile and load_profile(root, args.profile).name != name:
        raise UsageError(f"--match {matched.tag} uses profile {name}, not {args.profile}")
    current = load_profile(root, name)
    for field in MATCHED_FIELDS:
        if getattr(current, field) != getattr(matched.profile, field):
            raise UsageError(
                f"profiles/{name}.toml [{field}] changed since {matched.tag} started; "
                "a same-budget control needs the same budget"
            )
    options = matched.options
    args.profile = name
    args.match = matched.tag
    args.max_candidates = int(options.get("max_candidates", args.max_candidates))
    args.max_hours = options.get("max_hours")
    args.smoke = bool(options.get("smoke", False))
    args.env = options.get("env", args.env)
    if args.env == "prod":  # the same deployment as TAG
        deployment = options.get("deployment") or {}
        args.startup_kit, args.username = deployment.get("startup_kit"), deployment.get("username")
        args.sites = ",".join(deployment.get("sites") or []) or None
    if args.seed is None:
        args.seed = options.get("seed")
    args.no_confirm = not options.get("confirm", False)  # the same keep rule as TAG
    print(
        f"afr: same-budget control of {matched.tag}: profile {name}, {args.max_candidates} candidates"
        f"{', smoke budget' if args.smoke else ''}",
        flush=True,
    )


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from engine.evidence.compare import compare_rows, format_compare
    from engine.evidence.trajectories import format_mechanism_table, mechanism_table

    root = _root(args)
    rows = compare_rows(root, args.tags)
    budgets = {row["tag"]: row.get("budget", "") for row in rows if "budget" in row}
    if len(set(budgets.values())) > 1 or len({row.get("smoke") for row in rows if "smoke" in row}) > 1:
        listed = "; ".join(f"{tag}: {budget or '?'}" for tag, budget in budgets.items())
        print(
            f"afr: warning: these campaigns ran at different budgets ({listed}); "
            "their scores are not comparable",
            file=sys.stderr,
        )
    mechanisms = mechanism_table([evidence.open_campaign(root, tag) for tag in args.tags])
    if args.json:  # each campaign's kept mechanisms, with the repeat verdict where there is one
        for facts in rows:
            tag = facts["tag"]
            facts["mechanisms"] = {
                m.mechanism: m.verdicts.get(tag) for m in mechanisms if tag in m.trajectories
            }
        print(json.dumps(rows, indent=2))
    else:
        print(format_compare(rows))
        print()
        print(format_mechanism_table(mechanisms, args.tags))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from engine.evidence.report import write_report

    root = _root(args)
    result = write_report(root, args.tag, commit=not args.no_commit)
    print(f"afr: report {result['report']}")
    print(f"afr: plot {result['plot']}")
    if result.get("commit"):
        print(f"afr: committed to {result['branch']} as {result['commit'][:7]}")
    return 0
