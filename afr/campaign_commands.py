"""The campaign subcommands: init, data, run, resume, attach, status, list, diff, validate.

Each is a thin call into ``engine``; the cockpit (``afr_tui``) is loaded only to attach to an engine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from afr.common import UsageError, gpu_ids, interactive, workspace_root
from afr.executor_options import chosen_executor, executor_for
from engine.campaign.options import CampaignError
from engine.profile import load_profile
from engine.run.policy import require_sandbox
from engine.run.runner import run_job
from engine.store.bundle import resolve_root


def cmd_init(args: argparse.Namespace) -> int:
    from engine.store.workspace import init_workspace

    path, created = init_workspace(args.dir, exist_ok=args.exist_ok)
    print(f"{'created' if created else 'using existing'} workspace {path}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from engine.federation import federation

    summary = federation(resolve_root(args.workspace, bundle_fallback=True), args.profile, args.data_root)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['profile']}: {summary['total_samples']:,} samples")
    for column in ("client", "source", "train", "test", "train classes", "test classes"):
        table.add_column(column, justify="right" if column in ("train", "test") else "left")

    def balance(counts: dict[str, int]) -> str:
        total = sum(counts.values()) or 1
        return " ".join(f"{label}:{100 * n / total:.0f}%" for label, n in counts.items())

    for client in summary["clients"]:
        table.add_row(
            client["client"],
            client["source"],
            str(client["train"]),
            str(client["test"]),
            balance(client["train_classes"]),
            balance(client["test_classes"]),
        )
    table.add_section()
    table.add_row(
        "total",
        f"{summary.get('users', '')} users" if "users" in summary else "",
        str(summary["total_train"]),
        str(summary["total_test"]),
        "",
        "",
    )
    Console().print(table)
    return 0


def _drive(campaign, action) -> int:
    """Run the campaign here with the console view; the control socket lets cockpits attach."""
    from afr.console import ConsoleView
    from engine.control.server import CommandServer
    from engine.wording import counted

    view = ConsoleView(campaign)
    with CommandServer(campaign):
        finished = view.run(action)
    if not finished:
        print(f"afr: aborted; continue with `afr resume {campaign.tag}`", file=sys.stderr)
        return 130
    from engine.campaign.status import summary

    info = summary(campaign.root, campaign.tag)
    best = "" if info["best"] is None else f", baseline {info['baseline']:.6f}, best {info['best']:.6f}"
    reason = f" ({info['reason']})" if info["reason"] else ""
    print(
        f"afr: {campaign.tag} {info['state']}{reason}: {counted(info['candidates'], 'candidate')}, "
        f"{info['kept']} kept, {counted(info['crashes'], 'crash')}{best}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from afr.agent_options import resolve_proposer
    from afr.deploy_options import deployment_from_args
    from engine.agent import build_proposer
    from engine.campaign.loop import Campaign
    from engine.campaign.options import CampaignOptions, campaign_dir
    from engine.campaign.status import default_tag, tag_problem

    args.proposer = resolve_proposer(args)
    root = workspace_root(args.workspace)
    if args.match:
        from afr.evidence_commands import apply_match

        apply_match(root, args)  # TAG's profile, caps and budget replace this run's
    profile = load_profile(root, args.profile or "fed_heart_disease")
    require_sandbox(profile)  # [run] sandbox = "required": refuse before anything is written
    tag = args.tag or default_tag(root, profile.name)
    problem = tag_problem(tag)
    if problem:
        raise UsageError(problem)
    gpus = gpu_ids()
    options = CampaignOptions(
        max_candidates=args.max_candidates,
        max_hours=args.max_hours,
        parallel=profile.parallel_width(args.parallel, len(gpus)),
        approval=args.approval,
        env=args.env,
        deployment=deployment_from_args(args),
        smoke=args.smoke,
        seed=profile.budget.seed if args.seed is None else args.seed,
        max_cost=args.max_cost,
        proposer=args.proposer,
        model=args.model,
        api_base=args.api_base,
        fallback_model=args.fallback_model,
        tool_calling=args.tool_calling,
        agent_cmd=args.agent_cmd,
        agent_timeout=args.agent_timeout,
        agent_max_output=args.agent_max_output,
        agent_env=list(args.agent_env),
        max_steps=args.max_steps,
        max_reply_tokens=args.max_reply_tokens,
        match=args.match,
        confirm=not args.no_confirm,
    )
    profile = _deployed(profile, options)  # --sites must fit the profile before anything starts
    options.executor, options.ray_address = chosen_executor(args)
    if (campaign_dir(root, tag) / "campaign.json").exists():
        raise CampaignError(f"campaign {tag} already exists; continue it with `afr resume {tag}`")
    _preflight(options)
    if _wants_background(args):
        return _background(root, tag, ["run", *_after(args.argv, "run"), "--headless", "--tag", tag], args)
    run_fn = executor_for(options.executor, options.ray_address, run_job)  # connects before any candidate runs
    campaign = Campaign(root, profile, tag, options, build_proposer(options), run_fn=run_fn, gpus=gpus)
    print(f"afr: campaign {tag} on {profile.name} in {root} (branch autoresearch/{tag})", flush=True)
    return _drive(campaign, campaign.start)


def cmd_resume(args: argparse.Namespace) -> int:
    import json

    from engine.agent import build_proposer
    from engine.campaign.loop import Campaign
    from engine.campaign.options import CampaignOptions, campaign_dir
    from engine.campaign.status import resolve_tag, summary
    from engine.control.server import engine_alive

    root = workspace_root(args.workspace)
    tag = resolve_tag(root, args.tag)
    if engine_alive(campaign_dir(root, tag)):
        raise UsageError(f"campaign {tag} is already running; watch it with `afr attach {tag}`")
    summary(root, tag)  # every ledger and the journal readable, before anything is written
    meta = json.loads((campaign_dir(root, tag) / "campaign.json").read_text())
    profile = load_profile(root, meta["profile"])
    require_sandbox(profile)
    options = CampaignOptions(**meta["options"])
    if args.max_candidates:
        options.max_candidates = args.max_candidates
    if args.max_hours:
        options.max_hours = args.max_hours
    options.executor, options.ray_address = chosen_executor(args, meta["options"])
    _preflight(options)
    if args.accept_environment:
        from engine.campaign.envcheck import accept_environment

        changed = accept_environment(root, campaign_dir(root, tag), f"autoresearch/{tag}")
        print(f"afr: environment accepted ({changed})" if changed else "afr: the environment is unchanged")
    if _wants_background(args):
        rest = [arg for arg in _after(args.argv, "resume") if arg not in (args.tag, "--accept-environment")]
        return _background(root, tag, ["resume", tag, *rest, "--headless"], args)
    profile = _deployed(profile, options)
    run_fn = executor_for(options.executor, options.ray_address, run_job)  # sweeps what a killed engine left
    campaign = Campaign(root, profile, tag, options, build_proposer(options), run_fn=run_fn, gpus=gpu_ids())
    print(
        f"afr: resuming {tag} (cap {options.max_candidates} candidate{'s' if options.max_candidates > 1 else ''})",
        flush=True,
    )
    return _drive(campaign, campaign.resume)


def _deployed(profile, options):
    """The profile a campaign on a real deployment runs: its budget names the deployment's sites."""
    if options.env != "prod":
        return profile
    from engine.run.deployment import Deployment

    return Deployment.of(options.deployment).profile_for(profile)


def _preflight(options) -> None:
    """Before any candidate runs: the LLM proposer's credentials are set and its endpoint answers."""
    if options.proposer != "llm":
        return
    if not options.model:
        raise UsageError("the llm proposer needs --model (any LiteLLM model string, e.g. openai/gpt-4o-mini)")
    from engine.agent.provider import preflight

    preflight(options.model, options.api_base)


def _wants_background(args: argparse.Namespace) -> bool:
    """``--detach``, or the cockpit (which watches a background engine, so quitting can leave it running)."""
    if args.detach:
        return True
    if args.headless:
        return False
    if not interactive():
        print("afr: no terminal for the cockpit; showing the headless view", file=sys.stderr)
        return False
    return True


def _after(argv: list[str], command: str) -> list[str]:
    """The arguments after the subcommand, less ``--detach`` (the background engine is headless)."""
    return [arg for arg in argv[argv.index(command) + 1 :] if arg != "--detach"]


def _background(root: Path, tag: str, argv: list[str], args: argparse.Namespace) -> int:
    """Start ``afr <argv>`` as a background engine in its own session (an SSH hang-up does not
    reach it), its output in ``engine.log``; then open the cockpit on it unless ``--detach``."""
    import os
    import subprocess
    import time

    from engine.campaign.options import campaign_dir
    from engine.control.server import LOG_NAME, engine_alive

    directory = campaign_dir(root, tag)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / LOG_NAME
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "afr.cli", *argv],
            cwd=os.getcwd(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while not engine_alive(directory):
        if process.poll() is not None:
            lines = log_path.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise CampaignError(f"the engine exited: {lines[-1].removeprefix('afr: error: ')}")
        if time.monotonic() > deadline:
            raise CampaignError(f"the engine did not start within 120 s; see {log_path}")
        time.sleep(0.1)
    if args.detach:
        print(
            f"afr: {tag} runs in the background (engine pid {process.pid}, log {log_path}); "
            f"watch it with `afr attach {tag}`"
        )
        return 0
    return _cockpit(directory, tag)


def _cockpit(directory: Path, tag: str) -> int:
    # Loaded only here: `afr status`, `afr list` and a headless engine never import Textual.
    from afr_tui import open_cockpit

    outcome = open_cockpit(directory)
    if outcome == "left":
        print(f"afr: {tag} keeps running in the background; `afr attach {tag}` reopens the cockpit")
    elif outcome == "stopped":
        print(f"afr: {tag} stops after the running candidate; `afr status {tag}` shows where it stands")
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from engine.campaign.options import campaign_dir
    from engine.campaign.status import last_state, resolve_tag
    from engine.control.server import engine_alive

    root = workspace_root(args.workspace)
    tag = resolve_tag(root, args.tag)
    directory = campaign_dir(root, tag)
    if not engine_alive(directory):
        raise UsageError(
            f"campaign {tag} has no running engine (last state: {last_state(directory)}); "
            f"continue it with `afr resume {tag}`"
        )
    if not interactive():
        raise UsageError("afr attach needs a terminal")
    return _cockpit(directory, tag)


def cmd_status(args: argparse.Namespace) -> int:
    from afr.console import print_status
    from engine.campaign.status import resolve_tag, summary

    root = workspace_root(args.workspace)
    info = summary(root, resolve_tag(root, args.tag))
    for warning in info["ledger_warnings"]:
        print(f"afr: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_status(info)
    if args.plot:
        import shutil

        from engine.evidence.plots import terminal_plot
        from engine.store.ledger import Ledger

        columns, lines = shutil.get_terminal_size((100, 30))
        rows = Ledger(Path(info["directory"])).rows()
        size = {"width": min(columns, 140), "height": max(12, min(lines - 4, 30))}
        print(terminal_plot(rows, info["tag"], maximize=info["maximize"], color=sys.stdout.isatty(), **size))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine.campaign.status import list_tags, summary
    from engine.store.ledger import LedgerError

    root = workspace_root(args.workspace)
    tags = list_tags(root)
    if not tags:
        print("no campaigns yet; start one with `afr run`")
    for tag in tags:
        try:
            info = summary(root, tag)
        except LedgerError as error:  # one unreadable campaign must not hide the others
            print(f"{tag:<40} {'?':<20} {'UNREADABLE':<18}    -        see below")
            print(f"afr: warning: {error}", file=sys.stderr)
            continue
        best = "-" if info["best"] is None else f"{info['best']:.4f}"
        mark = "  (ledger needs repair: `afr resume`)" if info["ledger_warnings"] else ""
        print(
            f"{tag:<40} {info['profile']:<20} {info['state']:<18} {info['candidates']:>4} cand  best {best}{mark}"
        )
        for warning in info["ledger_warnings"]:
            print(f"afr: warning: {warning}", file=sys.stderr)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    import re

    import git

    from engine.campaign.lineage import changes, parent_of
    from engine.campaign.status import campaigns_root, resolve_tag
    from engine.store.ledger import Ledger

    root = workspace_root(args.workspace)
    tag = resolve_tag(root, args.tag)
    directory = campaigns_root(root) / tag
    if re.fullmatch(r"[Ll]\d+", args.candidate):  # a literature row, as the cockpit names it
        sheet = directory / "literature" / f"{int(args.candidate[1:]):03d}.md"
        if not sheet.exists():
            raise UsageError(f"no literature review {args.candidate.upper()} in campaign {tag}")
        print(sheet.read_text(encoding="utf-8"), end="")
        return 0
    records = Ledger(directory).latest_candidates()
    record = records.get(args.candidate)
    if record is None:
        raise UsageError(f"no candidate {args.candidate!r} in campaign {tag}")
    meta = json.loads((directory / "campaign.json").read_text())
    baseline = load_profile(root, meta["profile"]).baseline
    parent = parent_of(directory / "journal.jsonl", record["id"])
    before = (records.get(parent) or {}).get("args") or {} if parent else {}
    print(f"{record['id']} [{record['status']}] {record['description']}")
    print(f"  parent: {parent + ' (kept)' if parent else 'the baseline configuration'}")
    changed = changes(baseline, before, record.get("args") or {})
    for name, (old, new) in changed.items():
        print(f"  {name}: {old} -> {new}")
    if not changed:
        print("  (the same args as its parent)")
    if record.get("error"):
        print(f"  reason: {record['error']}")
    commit, parent_commit = record.get("commit"), record.get("parent")
    if commit and parent_commit and commit != parent_commit:
        print(git.Repo(root).git.diff(parent_commit, commit, "--", ".", ":(exclude)results.tsv"))
    else:
        print("  (no code change: args only)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.guard.validate import protected_files, validate
    from engine.store.workspace import changed_paths, committed_hashes

    root = workspace_root(args.workspace)
    profile = load_profile(root, args.profile)
    protected = [path.relative_to(root).as_posix() for path in protected_files(root, profile)]
    verdict = validate(root, changed_paths(root), profile, {}, committed_hashes(root, protected))
    for name, result in verdict.checks.items():
        print(f"{'ok  ' if result == 'ok' else 'FAIL'} {name}: {result}")
    if not verdict.ok:
        raise UsageError(f"validation failed: {verdict.reason}")
    return 0
