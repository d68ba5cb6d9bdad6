"""Shared pieces of the cockpit tests: a fixed campaign directory, a link that records
commands, a fixed clock and system sample, and waiting helpers for Pilot."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from afr_tui.app import CockpitApp
from afr_tui.link import Link
from engine.control.events import Event, EventType
from engine.control.telemetry import FixedSampler, GpuStat, HostStat, Sample
from engine.store.ledger import Ledger, ResultRow

ROOT = Path(__file__).resolve().parents[1]
TAG = "snap-20261122"
CREATED = 1_795_000_000.0
NOW = CREATED + 1834.0
DESCRIPTIONS = [
    ("baseline", "baseline: Fed-Heart-Disease (FLamby), 4 hospitals, logistic regression", {}),
    ("scalar", "calibration: FedAvgM server momentum", {"aggregator": "fedavgm", "server_momentum": 0.9}),
    ("scalar", "calibration: FedAdam server optimiser", {"aggregator": "fedadam", "server_lr": 0.03}),
    ("scalar", "random search: lr 0.0123", {"lr": 0.0123}),
    ("scalar", "random search: lr 0.3 (diverges)", {"lr": 0.3}),
    ("scalar", "refine best: fedadam_tau 0.001->0.0007", {"aggregator": "fedadam", "fedadam_tau": 0.0007}),
]
OUTCOMES = [
    ("keep", 0.6368),
    ("discard", 0.6311),
    ("keep", 0.6568),
    ("discard", 0.6401),
    ("crash", 0.0),
    ("discard", 0.6552),
]
DIFF = """diff --git a/tasks/fed_heart_disease/client.py b/tasks/fed_heart_disease/client.py
--- a/tasks/fed_heart_disease/client.py
+++ b/tasks/fed_heart_disease/client.py
@@ -40,7 +40,7 @@ def main() -> None:
-    loss_fn = torch.nn.BCEWithLogitsLoss()
+    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(0.8))
"""
CHECKS = dict.fromkeys(("surface", "args", "contract", "compile", "model", "integrity"), "ok")


class Writer:
    """Writes events with fixed timestamps, as the engine would have."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "journal.jsonl"
        self.seq = 0
        self.ts = CREATED

    def __call__(self, type_: EventType, step: float = 7.0, **data) -> None:
        self.seq += 1
        self.ts += step
        with open(self.path, "a") as handle:
            handle.write(Event(type_, data, self.ts, self.seq).to_json() + "\n")


def fixed_campaign(base: Path, awaiting: bool = False, running: bool = False) -> Path:
    """A campaign directory at ``base/ws/.afr/campaigns/TAG`` with six reviewed candidates and a
    literature review; optionally a seventh awaiting approval (with a diff) or running."""
    directory = base / "ws" / ".afr" / "campaigns" / TAG
    directory.mkdir(parents=True)
    options = {"max_candidates": 20, "approval": "manual" if awaiting else "auto", "proposer": "scripted"}
    meta = {
        "tag": TAG,
        "profile": "fed_heart_disease",
        "options": options,
        "created": CREATED,
        "profile_toml": (ROOT / "profiles" / "fed_heart_disease.toml").read_text(),
    }
    (directory / "campaign.json").write_text(json.dumps(meta))
    ledger = Ledger(directory)
    ledger.ensure()
    write = Writer(directory)
    write(EventType.CAMPAIGN_STARTED, step=0.0, tag=TAG, profile="fed_heart_disease", options=options)
    write(EventType.STATE, state="running")
    best = None
    for index, ((target, description, args), (status, score)) in enumerate(
        zip(DESCRIPTIONS, OUTCOMES, strict=True), start=1
    ):
        cid = f"c{index:03d}"
        write(
            EventType.CANDIDATE_PROPOSED,
            id=cid,
            description=description,
            target=target,
            args=args,
            parent="abc1234",
            edits=[],
            source_refs=[],
            proposer="scripted",
            telemetry={},
        )
        write(EventType.CANDIDATE_VALIDATED, id=cid, commit="abc1234", checks=CHECKS)
        write(
            EventType.CANDIDATE_STARTED,
            id=cid,
            run_dir=str(directory / "runs" / cid),
            gpu=None,
            description=description,
        )
        runtime = 31.0 + index
        write(
            EventType.CANDIDATE_FINISHED,
            step=runtime,
            id=cid,
            status="ok",
            score=score,
            runtime_seconds=runtime,
            error="",
        )
        ledger.append_row(
            ResultRow(
                "abc1234", score, runtime, "clients=4;rounds=15", status, target, description, f"runs/{cid}"
            )
        )
        if status == "keep":
            best = {
                "score": score,
                "description": description,
                "artifacts": f"runs/{cid}",
                "baseline": 0.6368,
            }
        ledger.append_candidate(
            {
                "id": cid,
                "status": status,
                "parent": "abc1234",
                "commit": "abc1234",
                "args": args,
                "validation": CHECKS,
                "description": description,
                "error": "RuntimeError: loss is NaN" if status == "crash" else "",
            }
        )
        write(
            EventType.CANDIDATE_REVIEWED,
            id=cid,
            status=status,
            score=score,
            description=description,
            runtime_seconds=runtime,
            best=best,
            **({"error": "RuntimeError: loss is NaN"} if status == "crash" else {}),
        )
        if index == 4:
            write(EventType.LITERATURE_STARTED, reason="forced by the human")
            write(
                EventType.LITERATURE_FINISHED,
                worksheet="literature/001.md",
                selected=["FedProx (Li et al. 2020)", "SCAFFOLD (Karimireddy et al. 2020)"],
            )
    if awaiting:
        write(
            EventType.CANDIDATE_PROPOSED,
            id="c007",
            description="class-weighted BCE loss",
            target="code",
            args={"lr": 0.01},
            parent="abc1234",
            edits=["tasks/fed_heart_disease/client.py"],
            source_refs=[],
            proposer="scripted",
            telemetry={},
        )
        write(EventType.STATE, state="awaiting_approval")
        write(
            EventType.CANDIDATE_AWAITING_APPROVAL,
            id="c007",
            description="class-weighted BCE loss",
            args={"lr": 0.01},
            diff=DIFF,
            checks=CHECKS,
        )
    if running:
        write(
            EventType.CANDIDATE_PROPOSED,
            id="c007",
            description="random search: lr 0.004",
            target="scalar",
            args={"lr": 0.004},
            parent="abc1234",
            edits=[],
            source_refs=[],
            proposer="scripted",
            telemetry={},
        )
        write(
            EventType.CANDIDATE_STARTED,
            id="c007",
            run_dir=str(directory / "runs" / "c007"),
            gpu=None,
            description="random search: lr 0.004",
        )
    return directory


class RecordingLink(Link):
    """A link to a campaign directory with no engine: commands are recorded, not sent."""

    detachable = True

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.sent = []

    def send(self, command) -> None:
        self.sent.append(command)


GPU_SAMPLE = Sample(
    [GpuStat(0, "NVIDIA H100 80GB HBM3", 87.0, 20480.0, 81559.0, 61.0, 312.0, [(4242, "python", 20100.0)])],
    HostStat(35.0, 16, 21.4, 125.6, 180.0, 2.4, 7),
)
CPU_SAMPLE = Sample([], HostStat(12.5, 2, 3.1, 7.8, 95.0, 0.62, 4), "no NVIDIA GPU found")


def fixed_app(directory: Path, sample: Sample = CPU_SAMPLE) -> CockpitApp:
    return CockpitApp(
        RecordingLink(directory), clock=lambda: NOW, sampler=FixedSampler(sample), sample_seconds=3600
    )


async def settle(pilot, predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Let the app run until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def loaded(pilot) -> None:
    """Until the fixed campaign is on screen: model, selected row's details, plot and system panel."""
    app = pilot.app
    await settle(pilot, lambda: app.loaded, what="the journal")
    table = app.query_one("#table")
    await settle(
        pilot,
        lambda: table.selected_id() in app.detail_cache or table.selected_id() is None,
        what="the selected candidate's details",
    )
    await settle(pilot, lambda: bool(app.query_one("#system").history), what="a system sample")
    await pilot.pause(0.6)  # the plot redraws on its half-second timer


def afr(*args, cwd, timeout: float = 180):
    """The ``afr`` command in a subprocess, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "afr.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_detached(workspace: Path, tag: str) -> Path:
    """``afr run --detach`` of a one-candidate, manual-approval smoke campaign; its directory."""
    started = afr(
        "run",
        "--detach",
        "--smoke",
        "--approval",
        "manual",
        "--max-candidates",
        "1",
        "--tag",
        tag,
        cwd=workspace,
    )
    assert started.returncode == 0, started.stderr
    return workspace / ".afr" / "campaigns" / tag
