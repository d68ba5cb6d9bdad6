"""The ``afr`` command. Every action is a call into ``engine``; errors are one line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine import __version__
from engine.profile import ProfileError, load_profile
from engine.resources import import_root, resolve_root


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
    data.set_defaults(handler=cmd_data)

    run = commands.add_parser("run", help="run a campaign (for now: the profile's baseline job)")
    run.add_argument("profile", nargs="?", default="fed_heart_disease")
    run.add_argument("--workspace", type=Path, default=None)
    run.add_argument("--proposer", choices=["scripted"], default="scripted")
    run.add_argument("--headless", action="store_true", help="console output instead of the cockpit")
    run.add_argument("--env", choices=["sim", "poc"], default="sim", help="NVFlare environment")
    run.add_argument("--smoke", action="store_true", help="use the profile's smoke budget")
    run.set_defaults(handler=cmd_run)
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    from engine.workspace import init_workspace

    path, created = init_workspace(args.dir, exist_ok=args.exist_ok)
    print(f"{'created' if created else 'using existing'} workspace {path}")
    return 0


def federation(root: Path, profile_name: str) -> dict:
    """The federation a profile trains on, from the task's data bridge."""
    import importlib

    profile = load_profile(root, profile_name)
    import_root(root)
    module = importlib.import_module(profile.task_dir.replace("/", ".") + ".data")
    clients = module.describe(profile.budget.n_clients)
    summary = {
        "profile": profile.name,
        "clients": clients,
        "total_train": sum(c["train"] for c in clients),
        "total_test": sum(c["test"] for c in clients),
    }
    summary["total_samples"] = summary["total_train"] + summary["total_test"]
    if all("users" in c for c in clients):
        summary["users"] = sum(c["users"] for c in clients)
    return summary


def cmd_data(args: argparse.Namespace) -> int:
    summary = federation(resolve_root(args.workspace), args.profile)
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


def cmd_run(args: argparse.Namespace) -> int:
    from engine.runner import run_job

    root = resolve_root(args.workspace)
    profile = load_profile(root, args.profile)
    run_dir = root / ".afr" / "baseline" / profile.name
    print(f"afr: running the {profile.name} baseline in {root} (log: {run_dir / 'job.log'})", flush=True)
    result = run_job(
        root,
        profile,
        {},
        run_dir,
        env=args.env,
        smoke=args.smoke,
        on_line=lambda line: print(line, flush=True) if "round" in line or "score" in line else None,
    )
    if result.status != "ok":
        raise UsageError(f"baseline {result.status}: {result.error} (log: {result.log_path})")
    sites = " ".join(f"{site}={value:.4f}" for site, value in result.per_site.items())
    print(
        f"afr: {profile.name} baseline {profile.metric.name} {result.score:.6f} in {result.runtime_seconds:.0f} s ({sites})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except (UsageError, ProfileError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"afr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("afr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
