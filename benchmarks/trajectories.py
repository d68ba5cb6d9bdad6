"""Issue 16's acceptance campaigns: K trajectories with and without confirmation, a same-budget
scripted control per trajectory, then `afr repeat --top 1` and `afr heldout` on each, and the figures.

python benchmarks/trajectories.py [--profile fed_heart_disease] [--k 3] [--candidates 30]
    [--proposer tpe] [--arms confirm,noconfirm,control] [--smoke] [--workspace DIR]

Every step is an `afr` command run as a subprocess in the workspace (made with `afr init` when
missing), so the benchmark exercises exactly what a user runs; rerunning the script continues
where it stopped (trajectories resume, repeat and held-out runs already in evidence.tsv are
reused). It prints, per trajectory, the best kept candidate's paired gain over the repeat seeds
and its verdict, the held-out check, and the repeated mean; per arm, the best repeated mean and
the candidate runtime; and what confirmation cost in runtime.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.evidence.runs import open_campaign  # noqa: E402


def afr(workspace: Path, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run one `afr` command in the workspace, streaming its output (unless ``quiet``) and keeping it."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    print(f"$ afr {' '.join(args)}", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "afr.cli", *args, "--workspace", str(workspace)],
        cwd=workspace,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if not quiet:
            print("  " + line, end="", flush=True)
    process.wait()
    if check and process.returncode != 0:
        raise SystemExit(f"afr {args[0]} failed ({process.returncode}): {''.join(lines[-3:])}")
    return subprocess.CompletedProcess(args, process.returncode, "".join(lines), "")


def trajectory_arm(workspace, options, arm: str) -> list[str]:
    base = f"bench-{arm}-{options.date}"
    args = ["trajectories", "--profile", options.profile, "--k", str(options.k), "--tag", base]
    args += ["--max-candidates", str(options.candidates), "--proposer", options.proposer]
    if options.smoke:
        args.append("--smoke")
    if options.parallel:
        args += ["--parallel", str(options.parallel)]
    if arm == "noconfirm":
        args.append("--no-confirm")
    afr(workspace, *args)
    return [f"{base}-t{i}" for i in range(1, options.k + 1)]


def control_arm(workspace, options, matched: list[str]) -> list[str]:
    """The study's scripted scalar-HPO control at each trajectory's budget (afr run --match)."""
    tags = []
    for tag in matched:
        control = f"{tag}-control"
        if not (workspace / ".afr" / "campaigns" / control / "campaign.json").exists():
            width = ["--parallel", str(options.parallel)] if options.parallel else []  # as the arms it controls
            afr(workspace, "run", "--proposer", "scripted", "--match", tag, "--tag", control, "--headless", *width)
        elif "finished" not in afr(workspace, "status", control, quiet=True).stdout:
            afr(workspace, "resume", control, "--headless")
        tags.append(control)
    return tags


def evidence(workspace, tags: list[str], seeds: str, heldout: bool) -> None:
    for tag in tags:
        campaign = open_campaign(workspace, tag)
        try:
            campaign.top(1)
        except ValueError:
            print(f"{tag}: kept nothing besides the baseline; no repeat", flush=True)
            continue
        afr(workspace, "repeat", tag, "--top", "1", "--seeds", seeds)
        if heldout and campaign.profile.heldout is not None:
            afr(workspace, "heldout", tag)


def figures(workspace, arms: dict[str, list[str]]) -> None:
    rows = {}
    for arm, tags in arms.items():
        facts = json.loads(afr(workspace, "compare", *tags, "--json", quiet=True).stdout)
        rows[arm] = facts
    print("\n== per trajectory ==")
    header = f"{'arm':<10} {'tag':<34} {'best':>7} {'repeat mean':>12} {'paired gain':>18} {'verdict':<15} held-out"
    print(header)
    for arm, facts in rows.items():
        for f in facts:
            repeat = f["repeat"]["mean"] if f.get("repeat") else None
            diff = f.get("repeat_difference")
            gain = f"{diff['mean']:+.4f} ± {diff['half_width'] or 0:.4f}" if diff else "-"
            held = f.get("heldout")
            held_text = f"{held['mean']:+.4f} ({'survives' if held['survives'] else 'lost'})" if held else "-"
            print(
                f"{arm:<10} {f['tag']:<34} {f['best'] or 0:>7.4f} "
                f"{'-' if repeat is None else f'{repeat:.4f}':>12} {gain:>18} "
                f"{(diff or {}).get('verdict', '-'):<15} {held_text}"
            )
    print("\n== per arm ==")
    for arm, facts in rows.items():
        repeated = [f["repeat"]["mean"] for f in facts if f.get("repeat")]
        robust = sum((f.get("repeat_difference") or {}).get("verdict") == "robust gain" for f in facts)
        survives = sum(bool((f.get("heldout") or {}).get("survives")) for f in facts)
        hours = sum(f["candidate_hours"] for f in facts)
        best = f"{max(repeated):.4f}" if repeated else "-"
        print(
            f"{arm:<10} best repeated mean {best}; robust gains {robust}/{len(facts)}; "
            f"held-out survives {survives}/{len(facts)}; candidate runtime {hours:.2f} h"
        )
    if "confirm" in arms:
        spent = total = 0.0
        for tag in arms["confirm"]:
            campaign = open_campaign(workspace, tag)
            spent += sum(
                float((r.get("confirmation") or {}).get("runtime_seconds") or 0.0)
                for r in campaign.records.values()
            )
            total += sum(r.runtime_seconds for r in campaign.rows if r.status != "literature")
        share = spent / total if total else 0.0
        print(
            f"\nconfirmation runs: {spent / 3600:.2f} h of {total / 3600:.2f} h candidate runtime ({share:.0%})"
        )
    print("\n== mechanisms across trajectories ==")
    for arm, tags in arms.items():
        print(f"-- {arm}")
        table = afr(workspace, "compare", *tags, quiet=True).stdout.split("\n\n", 1)[-1]
        print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="fed_heart_disease")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--proposer", default="tpe", choices=["scripted", "tpe"])
    parser.add_argument(
        "--arms", default="confirm,noconfirm,control", help="any of confirm,noconfirm,control"
    )
    parser.add_argument("--parallel", type=int, default=None, help="run slots per trajectory")
    parser.add_argument("--seeds", default="42,43,44,45,46", help="afr repeat seeds")
    parser.add_argument("--no-heldout", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="the profile's smoke budget (a quick check)")
    parser.add_argument("--workspace", type=Path, default=Path("bench-trajectories"))
    parser.add_argument("--date", default=f"{dt.date.today():%Y%m%d}", help="in the tags, to continue a run")
    options = parser.parse_args()
    workspace = options.workspace.resolve()
    if not (workspace / ".git").exists():
        subprocess.run([sys.executable, "-m", "afr.cli", "init", str(workspace)], check=True, cwd=REPO)
    started = time.monotonic()
    wanted = [a.strip() for a in options.arms.split(",") if a.strip()]
    arms: dict[str, list[str]] = {}
    for arm in ("confirm", "noconfirm"):
        if arm in wanted:
            arms[arm] = trajectory_arm(workspace, options, arm)
    if "control" in wanted:
        arms["control"] = control_arm(workspace, options, arms.get("confirm") or arms.get("noconfirm") or [])
    for tags in arms.values():
        evidence(workspace, tags, options.seeds, not options.no_heldout)
    figures(workspace, arms)
    print(f"\nbenchmark wall time {(time.monotonic() - started) / 60:.1f} min in {workspace}")


if __name__ == "__main__":
    main()
