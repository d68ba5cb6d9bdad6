"""Run slots: a freed slot takes the next candidate, the proposer works ahead, candidates run
alongside the baseline and are reviewed after it, a stop drops what never started (fake runner)."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import FakeRunner
from test_campaign import _order, in_thread, make, wait_for

from engine.agent.scripted import ScriptedProposer
from engine.control.events import Command, CommandType, EventType
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace


@pytest.fixture
def workspace(tmp_path):
    return init_workspace(tmp_path / "ws")[0]


class SlowOneRunner(FakeRunner):
    """Candidate ``slow_id`` takes ``slow`` seconds, every other one ``fast``."""

    def __init__(self, slow: float, fast: float, slow_id: str = "c002") -> None:
        super().__init__()
        self.slow, self.fast, self.slow_id = slow, fast, slow_id

    def __call__(self, root, profile, args, run_dir, **options):
        self.delay = self.slow if run_dir.name == self.slow_id else self.fast
        return super().__call__(root, profile, args, run_dir, **options)


def test_a_freed_slot_takes_the_next_candidate_while_a_slow_one_runs(workspace):
    campaign, events = make(workspace, SlowOneRunner(slow=3.0, fast=0.05), max_candidates=6, parallel=2)
    campaign.start()
    rows = campaign.ledger.rows()
    assert len(rows) == 6 and rows[0].target == "baseline"
    slow_done = _order(events, EventType.CANDIDATE_FINISHED, "c002")
    # No batch waits for its slowest member: the other slot ran c003.. while c002 was running.
    assert _order(events, EventType.CANDIDATE_FINISHED, "c004") < slow_done
    assert [r.artifacts for r in rows].index("runs/c002") > [r.artifacts for r in rows].index("runs/c003")
    # Each review compares with the best known then: a keep always beats every earlier keep.
    best = None
    for row in rows:
        if row.status == "keep":
            assert best is None or row.score > best + campaign.profile.watchdog.min_delta
            best = row.score
    started = [e for e in events if e.type is EventType.CANDIDATE_STARTED]
    assert {e.data["id"] for e in started} == {f"c00{i}" for i in range(1, 7)}


def test_the_next_proposal_is_prepared_while_a_candidate_runs(workspace):
    class SlowProposer(ScriptedProposer):
        def propose(self, context):
            time.sleep(0.2)
            return super().propose(context)

    # Runs long enough that a loaded machine still validates the next proposal inside one.
    campaign, events = make(workspace, FakeRunner(delay=2.0), SlowProposer(), max_candidates=4, parallel=1)
    campaign.start()
    assert len(campaign.ledger.rows()) == 4
    # One slot: c003 was proposed and validated while c002 ran, and started as soon as it finished.
    assert _order(events, EventType.CANDIDATE_VALIDATED, "c003") < _order(
        events, EventType.CANDIDATE_FINISHED, "c002"
    )
    # Even the baseline's run overlaps the next proposal: c002 was ready before the baseline finished.
    assert _order(events, EventType.CANDIDATE_VALIDATED, "c002") < _order(
        events, EventType.CANDIDATE_FINISHED, "c001"
    )


def test_with_three_slots_candidates_run_alongside_the_baseline_and_are_reviewed_after_it(workspace):
    class SlowProposer(ScriptedProposer):
        def propose(self, context):
            time.sleep(0.3)
            return super().propose(context)

    runner = SlowOneRunner(slow=2.5, fast=0.2, slow_id="c001")  # the others finish before the baseline
    campaign, events = make(workspace, runner, SlowProposer(), max_candidates=5, parallel=3)
    campaign.start()
    rows = campaign.ledger.rows()
    # The proposer, asked again while the baseline runs, does not propose the baseline twice.
    assert [r.target for r in rows].count("baseline") == 1 and len(rows) == 5
    baseline_done = _order(events, EventType.CANDIDATE_FINISHED, "c001")
    # The other slots did not wait for the baseline: c002 and c003 ran, and finished, before it.
    for cid in ("c002", "c003"):
        assert _order(events, EventType.CANDIDATE_STARTED, cid) < baseline_done
        assert _order(events, EventType.CANDIDATE_FINISHED, cid) < baseline_done
    # Reviewed only once the baseline was: every candidate is compared with it.
    assert [r.artifacts for r in rows][:3] == ["runs/c001", "runs/c002", "runs/c003"]
    assert rows[0].status == "keep" and rows[0].target == "baseline"
    assert all(
        _order(events, EventType.CANDIDATE_REVIEWED, cid)
        > _order(events, EventType.CANDIDATE_REVIEWED, "c001")
        for cid in ("c002", "c003", "c004", "c005")
    )


def test_stop_with_a_prepared_candidate_records_it_as_not_run(workspace):
    campaign, events = make(workspace, FakeRunner(delay=0.8), max_candidates=10, parallel=1)
    thread = in_thread(campaign.start)
    wait_for(events, lambda e: e.type is EventType.CANDIDATE_VALIDATED and e.data["id"] == "c003")
    campaign.command(Command(CommandType.STOP))
    thread.join(timeout=30)
    records = Ledger(campaign.dir).latest_candidates()
    unrun = [r for r in records.values() if r["status"] == "rejected"]
    assert [r["error"] for r in unrun] == ["not run: the campaign stopped first"]
    assert events[-1].type is EventType.STOPPED and events[-1].data["phase"] == "done"
    assert not list(campaign.repo.worktrees.glob("c*"))  # no worktree left behind


class TimedProposer(ScriptedProposer):
    """Takes ``seconds`` per proposal (not for the baseline, as afr's LLM proposer) and records
    when each call started and ended; ``concurrent_proposals`` as declared."""

    def __init__(self, seconds: float, concurrent: int = 1) -> None:
        super().__init__()
        self.seconds = seconds
        self.concurrent_proposals = concurrent
        self.calls: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def propose(self, context):
        started = time.monotonic()
        if not context.baseline_due:
            time.sleep(self.seconds)
        with self._lock:  # the scripted draw itself is not made for two threads
            spec = super().propose(context)
            self.calls.append((started, time.monotonic()))
        return spec


def most_at_once(calls: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in calls] + [(end, -1) for _, end in calls])
    at_once = most = 0
    for _, step in edges:
        at_once += step
        most = max(most, at_once)
    return most


def test_a_proposer_that_declares_independent_calls_proposes_for_every_slot_at_once(workspace):
    proposer = TimedProposer(seconds=1.0, concurrent=16)
    campaign, events = make(workspace, FakeRunner(delay=0.3), proposer, max_candidates=7, parallel=3)
    campaign.start()
    rows = campaign.ledger.rows()
    assert len(rows) == 7 and [r.target for r in rows].count("baseline") == 1
    # Calls overlapped, but never more than one per slot.
    assert most_at_once(proposer.calls) == 3
    # Every candidate is prepared once, under its own id and worktree, and none is left behind.
    proposed = [e.data["id"] for e in events if e.type is EventType.CANDIDATE_PROPOSED]
    assert proposed == [f"c00{i}" for i in range(1, 8)]
    assert not list(campaign.repo.worktrees.glob("*"))


def test_a_serial_proposer_is_asked_once_at_a_time_and_reviews_go_on_meanwhile(workspace):
    proposer = TimedProposer(seconds=1.5)
    campaign, events = make(workspace, FakeRunner(delay=0.1), proposer, max_candidates=3, parallel=2)
    campaign.start()
    assert len(campaign.ledger.rows()) == 3 and most_at_once(proposer.calls) == 1
    # The baseline finished and was reviewed while c002's proposal was still being made: a slow
    # proposer no longer holds up the review (nor a keep, nor a stop) of what finished meanwhile.
    assert _order(events, EventType.CANDIDATE_REVIEWED, "c001") < _order(
        events, EventType.CANDIDATE_PROPOSED, "c002"
    )


def test_stop_while_proposals_are_made_records_them_as_not_run(workspace):
    proposer = TimedProposer(seconds=1.5, concurrent=16)
    campaign, events = make(workspace, FakeRunner(delay=5.0), proposer, max_candidates=10, parallel=2)
    thread = in_thread(campaign.start)
    wait_for(events, lambda e: e.type is EventType.CANDIDATE_STARTED and e.data["id"] == "c001")
    campaign.command(Command(CommandType.STOP))
    thread.join(timeout=30)
    assert not thread.is_alive()
    records = Ledger(campaign.dir).latest_candidates()
    # The proposals under way when the human stopped came back, and were recorded, not run.
    assert {r["status"] for cid, r in records.items() if cid != "c001"} == {"rejected"}
    assert len(records) >= 2
    assert events[-1].type is EventType.STOPPED and events[-1].data["phase"] == "done"
    assert not list(campaign.repo.worktrees.glob("*"))
