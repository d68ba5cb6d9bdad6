"""Running one candidate on a slot's thread: its run directory, GPU, events, and the retries of a stall.

A slot thread only runs: it never touches the ledger or git (the campaign thread reviews).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.control.events import EventType
from engine.run.executors import PLACED
from engine.run.phases import parse_round_metric
from engine.run.retry import run_retrying_stalls
from engine.run.runner import RunResult

if TYPE_CHECKING:
    from engine.campaign.candidate import Candidate
    from engine.campaign.loop import Campaign


def run_candidate(campaign: Campaign, candidate: Candidate, slot: int) -> RunResult:
    cid = candidate.id
    run_dir = campaign.dir / "runs" / cid
    gpu = campaign.gpus[slot % len(campaign.gpus)] if campaign.gpus else None
    candidate.started = time.time()
    campaign.running[cid] = candidate
    campaign.emit(
        EventType.CANDIDATE_STARTED,
        id=cid,
        run_dir=str(run_dir),
        gpu=gpu,
        description=candidate.spec.description,
    )

    def on_line(line: str) -> None:
        point = parse_round_metric(line)
        if point is not None:  # typed, so a cockpit draws the live curve without parsing log text
            campaign.emit(EventType.CANDIDATE_ROUND, id=cid, line=line, **point.as_event())
        elif " round " in line or "score:" in line or "Error" in line or line.startswith(PLACED):
            campaign.emit(EventType.CANDIDATE_LOG, id=cid, line=line[-300:])

    def on_token(token: str) -> None:
        candidate.token = token
        campaign.emit(EventType.CANDIDATE_LOG, id=cid, line="job started", token=token)

    def run(run_dir: Path) -> RunResult:
        return campaign.run_fn(
            candidate.worktree,
            campaign.profile,
            candidate.spec.args,
            run_dir,
            env=campaign.options.env,
            **campaign.options.deployment_kwargs(),  # a real deployment's startup kit and sites
            smoke=campaign.options.smoke,
            gpu=gpu,
            on_line=on_line,
            on_start=on_token,
            trusted=getattr(campaign, "trusted", None),  # the score of record from afr's evaluator
        )

    def on_retry(result: RunResult) -> None:
        campaign.emit(EventType.CANDIDATE_LOG, id=cid, line=f"{result.error}; running it once more")

    result, _ = run_retrying_stalls(run, run_dir, on_retry)
    campaign.running.pop(cid, None)
    campaign.emit(
        EventType.CANDIDATE_FINISHED,
        id=cid,
        status=result.status,
        score=result.score,
        runtime_seconds=result.runtime_seconds,
        error=result.error,
        sandbox=result.sandbox,
        placement=result.placement or None,  # the node (and GPU) a remote executor ran it on
    )
    return result
