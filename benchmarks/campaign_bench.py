"""Shared pieces of the campaign benchmarks: a fresh workspace, a fixed proposal sequence, a timed
in-process campaign, and the machine's load.

The sequence is the scripted proposer's own (baseline, the aggregator calibration, then random
search), computed once up front as if every earlier proposal had been discarded, so that every
variant of a benchmark runs exactly the same candidates whatever its scores and timing.
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext  # noqa: E402
from engine.agent.llm import LLMProposer  # noqa: E402
from engine.agent.scripted import ScriptedProposer  # noqa: E402
from engine.campaign.loop import Campaign  # noqa: E402
from engine.campaign.options import CampaignOptions  # noqa: E402
from engine.campaign.status import summary  # noqa: E402
from engine.campaign.timing import time_line  # noqa: E402
from engine.control.events import Event, EventType  # noqa: E402
from engine.profile import Profile, load_profile  # noqa: E402
from engine.run.runner import run_job  # noqa: E402
from engine.store.workspace import init_workspace  # noqa: E402

PROFILE = "fed_heart_disease"


def load() -> str:
    """The 1/5/15-minute load averages and `uptime`'s own line."""
    averages = "/".join(f"{value:.2f}" for value in os.getloadavg())
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return f"load {averages} (cores {os.cpu_count()}); uptime: {uptime}"


def scripted_sequence(profile: Profile, count: int, seed: int = 0) -> list[CandidateSpec]:
    """The scripted proposer's first ``count`` proposals, each as if all before it were discarded."""
    proposer, specs, records = ScriptedProposer(), [], []
    for index in range(count):
        spec = proposer.propose(ProposalContext(profile, [], list(records), {}, index, seed))
        specs.append(spec)
        records.append({"args": dict(spec.args), "status": "discard"})
    return specs


class SequenceProposer:
    """Proposes a fixed list of specs in order (the n-th proposal is the n-th spec)."""

    name = "scripted"

    def __init__(self, specs: list[CandidateSpec]) -> None:
        self.specs = specs
        self._literature = ScriptedProposer()

    def propose(self, context: ProposalContext) -> CandidateSpec:
        # Proposals made at once (a slow double's) each count the others still being made.
        index = context.proposed + context.in_preparation
        return copy.deepcopy(self.specs[index % len(self.specs)])

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult:
        return self._literature.literature(context, width)


class SlowProposer:
    """A test double of an LLM's latency: the wrapped proposer, ``seconds`` slower per proposal.
    Like afr's LLM proposer, its calls may run at once (one per slot), unless ``concurrent`` is
    False (a one-at-a-time proposer, as afr's external-agent proposer). Only the benchmarks
    construct it; no campaign option selects it."""

    def __init__(self, inner, seconds: float, concurrent: bool = True) -> None:
        self.inner = inner
        self.seconds = seconds
        self.name = inner.name
        self.concurrent_proposals = LLMProposer.concurrent_proposals if concurrent else 1
        self._inner = threading.Lock()

    def propose(self, context: ProposalContext) -> CandidateSpec:
        if not context.baseline_due:  # as afr's LLM and agent proposers: the baseline needs no model call
            time.sleep(self.seconds)
        with self._inner:
            return self.inner.propose(context)

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult:
        return self.inner.literature(context, width)


def idle_slot_seconds(events: list[Event], width: int) -> float:
    """Slot-seconds with no candidate running, from the campaign's start to its last candidate's
    start (after that no candidate is left to run, whatever the proposer): what a slow proposer
    (or anything else before a run) costs, independent of how fast the jobs themselves were."""
    start = next(e.ts for e in events if e.type is EventType.CAMPAIGN_STARTED)
    changes = sorted(
        (e.ts, 1 if e.type is EventType.CANDIDATE_STARTED else -1)
        for e in events
        if e.type in (EventType.CANDIDATE_STARTED, EventType.CANDIDATE_FINISHED)
    )
    last_start = max(ts for ts, step in changes if step == 1)
    idle, running, at = 0.0, 0, start
    for ts, step in changes:
        if ts > last_start:
            break
        idle += (width - running) * (ts - at)
        running, at = running + step, ts
    return idle


@dataclass
class CampaignRun:
    label: str
    wall_seconds: float
    candidates: int
    statuses: dict[str, str]
    scores: dict[str, float | None]
    timing: str  # `afr status`'s time line for the campaign
    load_before: str
    load_after: str
    idle_slot_seconds: float

    @property
    def per_hour(self) -> float:
        return 3600 * self.candidates / self.wall_seconds


def run_campaign(
    scratch: Path, label: str, proposer, candidates: int, parallel: int, lean: bool = True
) -> CampaignRun:
    """A fresh workspace and one in-process campaign at the full budget, timed from start to finish.
    Confirmation is off so that every variant runs exactly ``candidates`` jobs; ``lean=False`` runs
    NVFlare's default knobs (a candidate as slow as before issue 15's lean jobs)."""
    root = init_workspace(scratch / label)[0]
    profile = load_profile(root, PROFILE)
    tag = f"bench-{label}-20261125"
    options = CampaignOptions(max_candidates=candidates, parallel=parallel, confirm=False)
    run_fn = run_job if lean else functools.partial(run_job, lean=False)
    campaign = Campaign(root, profile, tag, options, proposer, run_fn=run_fn)
    before = load()
    started = time.monotonic()
    campaign.start()
    wall = time.monotonic() - started
    after = load()
    records = campaign.final_records()
    return CampaignRun(
        label,
        wall,
        sum(1 for r in records.values() if "run_status" in r),
        {cid: r.get("status", "") for cid, r in sorted(records.items())},
        {cid: r.get("score") for cid, r in sorted(records.items())},
        time_line(summary(root, tag)["time"]),
        before,
        after,
        idle_slot_seconds(campaign.journal.events(), parallel),
    )


def describe(run: CampaignRun) -> str:
    scores = " ".join(
        f"{cid}={score:.4f}" if score is not None else f"{cid}=-" for cid, score in run.scores.items()
    )
    return (
        f"{run.label}: {run.candidates} candidates in {run.wall_seconds:.1f} s wall "
        f"({run.per_hour:.1f} candidates/hour); slots idle before the last start {run.idle_slot_seconds:.1f} slot-s\n"
        f"  {run.timing}\n  scores: {scores}\n  before: {run.load_before}\n  after:  {run.load_after}"
    )
