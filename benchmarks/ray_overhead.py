"""Wall time of a smoke Heart campaign on a 2-node local Ray cluster against the local executor.

python benchmarks/ray_overhead.py [--candidates 8] [--parallel 1] [--full]

Starts a two-node Ray cluster on this machine (one CPU each, like the tests), makes a fresh
workspace per executor, runs ``afr run --executor local|ray`` with the scripted proposer (the
same candidates in both, confirmations off), and prints the campaign wall times and, per
candidate, what Ray adds: the executor's time from submission to the unpacked result less the
job's own runtime (shipping code and views, scheduling, unpacking the run directory). On one
machine the cluster can only cost time; the figures say how much.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAG = "bench-ray-20261125"


def afr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "afr.cli", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def campaign(base: Path, executor: str, options: argparse.Namespace, address: str | None) -> dict:
    workspace = base / executor / "ws"
    workspace.parent.mkdir(parents=True)
    done = afr("init", str(workspace), cwd=base)
    if done.returncode:
        raise SystemExit(done.stderr)
    argv = ["run", "--profile", "fed_heart_disease", "--headless", "--no-confirm", "--tag", TAG]
    argv += ["--max-candidates", str(options.candidates), "--parallel", str(options.parallel)]
    argv += [] if options.full else ["--smoke"]
    argv += ["--executor", executor] + (["--ray-address", address] if address else [])
    started = time.monotonic()
    done = afr(*argv, cwd=workspace)
    wall = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"{executor}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    path = workspace / ".afr" / "campaigns" / TAG / "candidates.jsonl"
    records = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        records[record["id"]] = record
    jobs = [r["runtime_seconds"] for r in records.values() if r.get("runtime_seconds")]
    overheads = [
        r["placement"]["executor_seconds"] - r["runtime_seconds"]
        for r in records.values()
        if r.get("placement", {}).get("executor_seconds")
    ]
    return {
        "executor": executor,
        "wall_seconds": round(wall, 1),
        "candidates": len(records),
        "statuses": sorted(r["status"] for r in records.values()),
        "mean_job_seconds": round(statistics.mean(jobs), 1),
        "ray_overhead_seconds": [round(o, 2) for o in overheads],
        "nodes": sorted({r.get("placement", {}).get("node_id", "local")[:12] for r in records.values()}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="the full budget instead of the smoke budget")
    options = parser.parse_args()
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"afr_head": 1}, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, resources={"afr_node_b": 1})
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory(prefix="afr-ray-bench-") as scratch:
            results = [
                campaign(Path(scratch), "local", options, None),
                campaign(Path(scratch), "ray", options, cluster.address),
            ]
    finally:
        cluster.shutdown()
    for result in results:
        print(json.dumps(result))
    local, remote = results
    overheads = remote["ray_overhead_seconds"]
    print(
        f"{options.candidates} {'full' if options.full else 'smoke'} Heart candidates, parallel {options.parallel}: "
        f"local {local['wall_seconds']:.0f} s, Ray (2 local nodes) {remote['wall_seconds']:.0f} s "
        f"({remote['wall_seconds'] / local['wall_seconds'] - 1:+.0%}); Ray adds "
        f"{statistics.mean(overheads):.1f} s per candidate (median {statistics.median(overheads):.1f} s, "
        f"max {max(overheads):.1f} s) over the job's own time"
    )


if __name__ == "__main__":
    main()
