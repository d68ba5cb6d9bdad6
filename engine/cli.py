"""The ``afr`` command. Every action is a call into ``engine``; errors are one line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine import __version__
from engine.campaign import CampaignError
from engine.ledger import LedgerError
from engine.profile import ProfileError, load_profile
from engine.resources import resolve_root


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afr",
        description="afr: run and supervise agentic federated-learning research campaigns on NVIDIA FLARE.",
    )
    parser.add_argument("--version", action="version", version=f"afr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser("init", help="make a workspace repository from the bundled template")
    init.add_argument("dir", type=Path)
    init.add_argument("--exist-ok", action="store_true", help="succeed if DIR already is a workspace")
    init.set_defaults(handler=cmd_init)

    data = commands.add_parser("data", help="show a profile's federation: per client sizes and class balance")
    data.add_argument("profile", help="profile name (profiles/NAME.toml) or path")
    data.add_argument("--workspace", type=Path, default=None)
    data.add_argument("--json", action="store_true", help="print JSON instead of a table")
    data.add_argument("--data_root", default=None, help="read the task's data here instead of budget.data_root")
    data.set_defaults(handler=cmd_data)

    run = commands.add_parser("run", help="start a campaign")
    run.add_argument("--profile", default=None, help="profile name or path (default: fed_heart_disease)")
    run.add_argument("--workspace", type=Path, default=None)
    run.add_argument("--tag", default=None, help="campaign tag: [a-z0-9._-] with a YYYYMMDD date")
    run.add_argument("--proposer", choices=["scripted", "llm"], default="scripted")
    run.add_argument("--model", default=None, help="LiteLLM model string, e.g. openai/gpt-4o-mini")
    run.add_argument("--api-base", default=None, help="OpenAI-compatible server, e.g. a local vLLM")
    run.add_argument("--fallback-model", default=None)
    run.add_argument("--max-cost", type=positive_float, default=None, help="USD; the campaign pauses there")
    run.add_argument("--no-tool-calling", action="store_true", help="JSON-in-text protocol for such models")
    run.add_argument("--max-steps", type=positive_int, default=16, help="model calls per candidate (llm)")
    run.add_argument(
        "--max-reply-tokens", type=positive_int, default=2048, help="completion tokens per model call (llm)"
    )
    run.add_argument("--max-candidates", type=positive_int, default=30)
    run.add_argument("--max-hours", type=positive_float, default=None)
    run.add_argument("--parallel", type=positive_int, default=1)
    run.add_argument("--approval", choices=["auto", "manual"], default="auto")
    run.add_argument("--seed", type=int, default=None, help="proposer seed (default: the profile's seed)")
    run.add_argument("--headless", action="store_true", help="console view instead of the cockpit")
    run.add_argument(
        "--detach", action="store_true", help="start the engine in the background; watch it with `afr attach`"
    )
    run.add_argument("--env", choices=["sim", "poc"], default="sim", help="NVFlare environment")
    run.add_argument(
        "--smoke", action="store_true", help="use the profile's smoke budget for every candidate"
    )
    run.add_argument(
        "--match", default=None, metavar="TAG", help="a same-budget control: TAG's profile, cap and budget"
    )
    run.set_defaults(handler=cmd_run)

    resume = commands.add_parser("resume", help="continue a campaign after a stop or crash")
    resume.add_argument("tag", nargs="?", default=None)
    resume.add_argument("--workspace", type=Path, default=None)
    resume.add_argument("--headless", action="store_true")
    resume.add_argument("--detach", action="store_true", help="continue in the background")
    resume.add_argument("--max-candidates", type=positive_int, default=None, help="raise (or lower) the cap")
    resume.add_argument("--max-hours", type=positive_float, default=None)
    resume.set_defaults(handler=cmd_resume)

    status = commands.add_parser("status", help="a campaign's progress")
    status.add_argument("tag", nargs="?", default=None)
    status.add_argument("--workspace", type=Path, default=None)
    status.add_argument("--json", action="store_true")
    status.add_argument("--plot", action="store_true", help="draw the running-best plot in the terminal")
    status.set_defaults(handler=cmd_status)

    diff = commands.add_parser("diff", help="a candidate's change against its parent, and its args")
    diff.add_argument("candidate", help="candidate id, e.g. c007")
    diff.add_argument("--tag", default=None)
    diff.add_argument("--workspace", type=Path, default=None)
    diff.set_defaults(handler=cmd_diff)

    validate = commands.add_parser("validate", help="run the guard on the workspace's uncommitted changes")
    validate.add_argument("--profile", default="fed_heart_disease")
    validate.add_argument("--workspace", type=Path, default=None)
    validate.set_defaults(handler=cmd_validate)

    listing = commands.add_parser("list", help="campaigns in this workspace")
    listing.add_argument("--workspace", type=Path, default=None)
    listing.set_defaults(handler=cmd_list)

    attach = commands.add_parser("attach", help="open the cockpit on a campaign running in the background")
    attach.add_argument("tag", nargs="?", default=None)
    attach.add_argument("--workspace", type=Path, default=None)
    attach.set_defaults(handler=cmd_attach)

    from engine.evidence_commands import add_commands as add_evidence_commands

    add_evidence_commands(commands, positive_int)  # repeat, heldout, compare, report
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    from engine.workspace import init_workspace

    path, created = init_workspace(args.dir, exist_ok=args.exist_ok)
    print(f"{'created' if created else 'using existing'} workspace {path}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from engine.federation import federation

    summary = federation(resolve_root(args.workspace), args.profile, args.data_root)
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


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def workspace_root(path: Path | None) -> Path:
    """A campaign needs a git workspace; the current folder or --workspace."""
    root = resolve_root(path)
    if not (root / ".git").exists():
        raise UsageError(f"{root} is not a git repository; make a workspace with `afr init DIR`")
    return root


def _drive(campaign, action) -> int:
    """Run the campaign here with the console view; the control socket lets cockpits attach."""
    from engine.console import ConsoleView
    from engine.control import CommandServer

    view = ConsoleView(campaign)
    with CommandServer(campaign):
        finished = view.run(action)
    if not finished:
        print(f"afr: aborted; continue with `afr resume {campaign.tag}`", file=sys.stderr)
        return 130
    from engine.status import summary

    info = summary(campaign.root, campaign.tag)
    best = "" if info["best"] is None else f", baseline {info['baseline']:.6f}, best {info['best']:.6f}"
    print(
        f"afr: {campaign.tag} {info['state']}: {info['candidates']} candidates, {info['kept']} kept, "
        f"{info['crashes']} crashes{best}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine.campaign import Campaign, CampaignOptions, campaign_dir
    from engine.proposers import build_proposer
    from engine.status import default_tag, tag_problem

    root = workspace_root(args.workspace)
    if args.match:
        from engine.evidence_commands import apply_match

        apply_match(root, args)  # TAG's profile, caps and budget replace this run's
    profile = load_profile(root, args.profile or "fed_heart_disease")
    tag = args.tag or default_tag(root, profile.name)
    problem = tag_problem(tag)
    if problem:
        raise UsageError(problem)
    options = CampaignOptions(
        max_candidates=args.max_candidates,
        max_hours=args.max_hours,
        parallel=args.parallel,
        approval=args.approval,
        env=args.env,
        smoke=args.smoke,
        seed=profile.budget.seed if args.seed is None else args.seed,
        max_cost=args.max_cost,
        proposer=args.proposer,
        model=args.model,
        api_base=args.api_base,
        fallback_model=args.fallback_model,
        tool_calling=not args.no_tool_calling,
        max_steps=args.max_steps,
        max_reply_tokens=args.max_reply_tokens,
        match=args.match,
    )
    if (campaign_dir(root, tag) / "campaign.json").exists():
        raise CampaignError(f"campaign {tag} already exists; continue it with `afr resume {tag}`")
    if _wants_background(args):
        return _background(root, tag, ["run", *_after(args.argv, "run"), "--headless", "--tag", tag], args)
    campaign = Campaign(root, profile, tag, options, build_proposer(options), gpus=gpu_ids())
    print(f"afr: campaign {tag} on {profile.name} in {root} (branch autoresearch/{tag})", flush=True)
    return _drive(campaign, campaign.start)


def cmd_resume(args: argparse.Namespace) -> int:
    import json

    from engine.campaign import Campaign, CampaignOptions, campaign_dir
    from engine.proposers import build_proposer
    from engine.status import resolve_tag

    root = workspace_root(args.workspace)
    tag = resolve_tag(root, args.tag)
    meta = json.loads((campaign_dir(root, tag) / "campaign.json").read_text())
    profile = load_profile(root, meta["profile"])
    options = CampaignOptions(**meta["options"])
    if args.max_candidates:
        options.max_candidates = args.max_candidates
    if args.max_hours:
        options.max_hours = args.max_hours
    if _wants_background(args):
        rest = [arg for arg in _after(args.argv, "resume") if arg != args.tag]
        return _background(root, tag, ["resume", tag, *rest, "--headless"], args)
    campaign = Campaign(root, profile, tag, options, build_proposer(options), gpus=gpu_ids())
    print(f"afr: resuming {tag} (cap {options.max_candidates} candidates)", flush=True)
    return _drive(campaign, campaign.resume)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _wants_background(args: argparse.Namespace) -> bool:
    """``--detach``, or the cockpit (which watches a background engine, so quitting can leave it running)."""
    if args.detach:
        return True
    if args.headless:
        return False
    if not _interactive():
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

    from engine.campaign import campaign_dir
    from engine.control import LOG_NAME, engine_alive

    directory = campaign_dir(root, tag)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / LOG_NAME
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *argv],
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
    import importlib

    # The cockpit lives outside the engine; it is loaded only here, so `engine` never imports Textual.
    outcome = importlib.import_module("afr_tui").open_cockpit(directory)
    if outcome == "left":
        print(f"afr: {tag} keeps running in the background; `afr attach {tag}` reopens the cockpit")
    elif outcome == "stopped":
        print(f"afr: {tag} stops after the running candidate; `afr status {tag}` shows where it stands")
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from engine.campaign import campaign_dir
    from engine.control import engine_alive
    from engine.status import last_state, resolve_tag

    root = workspace_root(args.workspace)
    tag = resolve_tag(root, args.tag)
    directory = campaign_dir(root, tag)
    if not engine_alive(directory):
        raise UsageError(
            f"campaign {tag} has no running engine (last state: {last_state(directory)}); "
            f"continue it with `afr resume {tag}`"
        )
    if not _interactive():
        raise UsageError("afr attach needs a terminal")
    return _cockpit(directory, tag)


def gpu_ids() -> list[str]:
    """One entry per visible NVIDIA GPU (NVML), for pinning one candidate per GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no GPU: candidates run on the CPU
        return []


def cmd_status(args: argparse.Namespace) -> int:
    from engine.console import print_status
    from engine.status import resolve_tag, summary

    root = workspace_root(args.workspace)
    info = summary(root, resolve_tag(root, args.tag))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_status(info)
    if args.plot:
        import shutil

        from engine.ledger import Ledger
        from engine.plots import terminal_plot

        columns, lines = shutil.get_terminal_size((100, 30))
        rows = Ledger(Path(info["directory"])).rows()
        size = {"width": min(columns, 140), "height": max(12, min(lines - 4, 30))}
        print(terminal_plot(rows, info["tag"], color=sys.stdout.isatty(), **size))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine.status import list_tags, summary

    root = workspace_root(args.workspace)
    tags = list_tags(root)
    if not tags:
        print("no campaigns yet; start one with `afr run`")
    for tag in tags:
        info = summary(root, tag)
        best = "-" if info["best"] is None else f"{info['best']:.4f}"
        print(
            f"{tag:<40} {info['profile']:<20} {info['state']:<18} {info['candidates']:>4} cand  best {best}"
        )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    import git

    from engine.ledger import Ledger
    from engine.status import campaigns_root, resolve_tag

    root = workspace_root(args.workspace)
    tag = resolve_tag(root, args.tag)
    record = Ledger(campaigns_root(root) / tag).latest_candidates().get(args.candidate)
    if record is None:
        raise UsageError(f"no candidate {args.candidate!r} in campaign {tag}")
    print(f"{record['id']} [{record['status']}] {record['description']}")
    for name, (old, new) in sorted((record.get("arg_changes") or {}).items()):
        print(f"  {name}: {old} -> {new}")
    if record.get("error"):
        print(f"  reason: {record['error']}")
    commit, parent = record.get("commit"), record.get("parent")
    if commit and parent and commit != parent:
        print(git.Repo(root).git.diff(parent, commit, "--", ".", ":(exclude)results.tsv"))
    else:
        print("  (no code change: args only)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.guard import protected_files, validate
    from engine.workspace import changed_paths, committed_hashes

    root = workspace_root(args.workspace)
    profile = load_profile(root, args.profile)
    protected = [path.relative_to(root).as_posix() for path in protected_files(root, profile)]
    verdict = validate(root, changed_paths(root), profile, {}, committed_hashes(root, protected))
    for name, result in verdict.checks.items():
        print(f"{'ok  ' if result == 'ok' else 'FAIL'} {name}: {result}")
    if not verdict.ok:
        raise UsageError(f"validation failed: {verdict.reason}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from engine.control import ControlError

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
    ) as error:
        print(f"afr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("afr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
