"""Where a campaign's time went: the phases around each job from the journal's event times, and the
wall time of the engine's sessions (engine/campaign/timing.py, shared by `afr status` and the report)."""

from __future__ import annotations

import pytest

from engine.campaign.timing import engine_phases, session_seconds, time_line, time_totals
from engine.control.events import Event, EventType

T = 1_795_000_000.0


def journal() -> list[Event]:
    """Two candidates: c001 straight through; c002 approved by the human, then confirmed; c003 rejected.
    The engine stops after c002 and is resumed a day later for c003."""
    steps = [
        (0, EventType.CAMPAIGN_STARTED, {}),
        (3, EventType.CANDIDATE_PROPOSED, {"id": "c001", "proposal_seconds": 3.0}),
        (4, EventType.CANDIDATE_VALIDATED, {"id": "c001"}),
        (6, EventType.CANDIDATE_STARTED, {"id": "c001"}),
        (36, EventType.CANDIDATE_FINISHED, {"id": "c001"}),
        (37, EventType.CANDIDATE_REVIEWED, {"id": "c001"}),
        (57, EventType.CANDIDATE_PROPOSED, {"id": "c002", "proposal_seconds": 20.0}),
        (59, EventType.CANDIDATE_VALIDATED, {"id": "c002"}),
        (89, EventType.DECISION, {"id": "c002", "decision": "approve"}),
        (90, EventType.CANDIDATE_STARTED, {"id": "c002"}),
        (120, EventType.CANDIDATE_FINISHED, {"id": "c002"}),
        (121, EventType.CANDIDATE_CONFIRMING, {"id": "c002", "done": 0, "total": 2}),
        (181, EventType.CANDIDATE_REVIEWED, {"id": "c002"}),
        (86_400, EventType.CAMPAIGN_RESUMED, {}),
        (86_401, EventType.CANDIDATE_PROPOSED, {"id": "c003"}),  # an old journal: no proposal time
        (86_402, EventType.CANDIDATE_REJECTED, {"id": "c003"}),
        (86_410, EventType.FINISHED, {}),
    ]
    return [Event(kind, data, T + at, seq) for seq, (at, kind, data) in enumerate(steps, start=1)]


def test_each_phase_around_the_job_comes_from_its_events():
    phases = engine_phases(journal())
    assert phases["c001"] == pytest.approx(
        {"proposal_seconds": 3, "validation_seconds": 1, "queue_seconds": 2, "review_seconds": 1}
    )
    # The wait for the human's approval is not queue time; confirmation is not review time.
    assert phases["c002"] == pytest.approx(
        {
            "proposal_seconds": 20,
            "validation_seconds": 2,
            "queue_seconds": 1,
            "review_seconds": 1,
            "confirmation_seconds": 60,
        }
    )
    assert phases["c003"] == pytest.approx({"proposal_seconds": 0, "validation_seconds": 1})


def test_wall_time_counts_the_engine_sessions_not_the_downtime():
    assert session_seconds(journal()) == pytest.approx(181 + 10)
    assert session_seconds(journal(), now=T + 86_500) == pytest.approx(181 + 100)  # a live last session


def test_totals_add_the_job_phases_from_records_and_give_candidates_per_hour():
    records = {
        cid: {"runtime_seconds": 30.0, "timings": {"nvflare_startup_seconds": 10.0, "rounds_seconds": 18.0,
              "final_eval_seconds": 2.0, "engine_seconds": 5.0}}
        for cid in ("c001", "c002")
    }  # fmt: skip
    records["c003"] = {"status": "rejected"}
    totals = time_totals(records, T, events=journal())
    assert totals["finished"] == 2 and totals["run_seconds"] == 60.0
    assert totals["wall_seconds"] == pytest.approx(191.0)
    assert totals["candidates_per_hour"] == pytest.approx(3600 * 2 / 191, abs=0.01)
    seconds = totals["phase_seconds"]
    assert (seconds["proposal_seconds"], seconds["queue_seconds"], seconds["confirmation_seconds"]) == (23, 3, 60)
    assert (seconds["nvflare_startup_seconds"], seconds["rounds_seconds"], seconds["final_eval_seconds"]) == (20, 36, 4)
    line = time_line(totals)
    assert line.startswith("37.7 candidates/hour; 1.0 min in jobs: proposal 0.4 min, validation 0.1 min")
    assert "confirmation 1.0 min" in line
    # Without a journal (an old caller), the wall time runs from the campaign's creation.
    assert time_totals(records, T, now=T + 3600)["candidates_per_hour"] == 2.0
