"""The live per-round curve: a job's per-round global metric travels as typed ``candidate_round``
events from the runner's log reader through the journal to the cockpit, which draws it as rounds arrive.

The job output is a recorded real one: ``data/heart_rounds.log`` holds the lines of a full-budget
Fed-Heart-Disease NVFlare job (15 rounds, lean settings) that the runner's phase clock reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fakes import FakeRunner
from tui_helpers import Writer, fixed_app, fixed_campaign, loaded, settle

from afr_tui.link import Link
from afr_tui.model import CockpitModel
from afr_tui.widgets.curve import RoundCurve, curve_for
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import Event, EventType
from engine.profile import load_profile
from engine.run.phases import PhaseClock, parse_round_metric
from engine.store.journal import read_events
from engine.store.workspace import init_workspace

RECORDED_LOG = Path(__file__).parent / "data" / "heart_rounds.log"
# What the runner wrote for that job (its job.log's ``afr: round N/15 global accuracy=...`` lines):
# NVFlare logs no site metric in the first round, so the curve starts at round 2.
RECORDED = [
    0.669323, 0.688301, 0.698665, 0.713088, 0.686645, 0.692201, 0.697756,
    0.725291, 0.730099, 0.724544, 0.729351, 0.730099, 0.730099, 0.724291,
]  # fmt: skip


class ReplayRunner(FakeRunner):
    """The fake runner's score, with the recorded NVFlare output streamed through the real phase clock
    exactly as ``run_job`` streams a live job's lines (job line, then the ``afr:`` lines it completes)."""

    def __call__(self, root, profile, args, run_dir: Path, **options):
        clock = PhaseClock(time.monotonic(), profile.budget.num_rounds, profile.metric.name)
        for line in RECORDED_LOG.read_text().splitlines():
            for shown in [line, *clock.feed(line, time.monotonic())]:
                options["on_line"](shown)
        result = super().__call__(root, profile, args, run_dir, **options)
        result.round_metrics = clock.phases().round_metrics
        return result


@pytest.fixture(scope="module")
def baseline_journal(tmp_path_factory) -> Path:
    """A real campaign (git workspace, guard, slots, journal) whose one candidate replays the recording."""
    root = init_workspace(tmp_path_factory.mktemp("curve") / "ws")[0]
    options = CampaignOptions(max_candidates=1, confirm=False)
    campaign = Campaign(
        root, load_profile(root, "fed_heart_disease"), "curve-20261125", options, ScriptedProposer(), ReplayRunner()
    )
    campaign.start()
    return campaign.dir


def test_the_runner_line_parses_into_a_typed_round():
    point = parse_round_metric("afr: round 7/15 global accuracy=0.612345 sites=4")
    assert (point.round, point.total, point.metric, point.value, point.sites) == (7, 15, "accuracy", 0.612345, 4)
    assert parse_round_metric("afr: round 7/15") is None  # the round counter, not a metric
    assert parse_round_metric("site says: afr: round 7/15 global accuracy=0.6 sites=4") is None
    assert parse_round_metric("afr: round 3 global log_loss=nan sites=2").total is None


def test_round_metrics_reach_the_journal_as_typed_events(baseline_journal):
    events = read_events(baseline_journal / "journal.jsonl")
    rounds = [e.data for e in events if e.type is EventType.CANDIDATE_ROUND]
    assert [r["round"] for r in rounds] == list(range(2, 16))
    assert {r["id"] for r in rounds} == {"c001"} and {r["total"] for r in rounds} == {15}
    assert {r["metric"] for r in rounds} == {"accuracy"} and {r["sites"] for r in rounds} == {4}
    assert [r["value"] for r in rounds] == pytest.approx(RECORDED, abs=1e-6)
    # The events arrive while the job runs: all between its start and its finish.
    seqs = {e.type: e.seq for e in events if e.type in (EventType.CANDIDATE_STARTED, EventType.CANDIDATE_FINISHED)}
    assert all(seqs[EventType.CANDIDATE_STARTED] < e.seq < seqs[EventType.CANDIDATE_FINISHED]
               for e in events if e.type is EventType.CANDIDATE_ROUND)  # fmt: skip
    # The record keeps the same curve, with the first round's "no report".
    record = [json.loads(line) for line in (baseline_journal / "candidates.jsonl").open()][-1]
    assert record["round_metrics"][0] is None
    assert record["round_metrics"][1:] == pytest.approx(RECORDED, abs=1e-6)


def test_the_cockpit_model_folds_the_curve_and_falls_back_to_the_record(baseline_journal):
    events = read_events(baseline_journal / "journal.jsonl")
    model = CockpitModel()
    third = [i for i, e in enumerate(events) if e.type is EventType.CANDIDATE_ROUND][2]
    model.apply_all(events[: third + 2])  # mid-run: three rounds in, and the next round's start line
    live = curve_for(model, "c001")
    assert live.live and [x for x, _ in live.points] == [2, 3, 4] and live.total == 15
    assert model.candidates["c001"].phase == "round 5/15"  # round 4 closed as round 5 started
    model.apply_all(events[third + 2 :])
    done = curve_for(model, "c001")
    assert not done.live and [y for _, y in done.points] == pytest.approx(RECORDED, abs=1e-6)
    # A cockpit attaching later skips a finished candidate's round events and reads its record.
    attached = CockpitModel()
    attached.replay(Link(baseline_journal).history())
    assert attached.candidates["c001"].curve == []
    record = [json.loads(line) for line in (baseline_journal / "candidates.jsonl").open()][-1]
    from_record = curve_for(attached, "c001", record)
    assert [y for _, y in from_record.points] == pytest.approx(RECORDED, abs=1e-6)
    assert [x for x, _ in from_record.points] == list(range(2, 16))


def test_a_retried_run_starts_its_curve_again():
    model = CockpitModel()

    def round_event(seq: int, number: int, value: float) -> Event:
        line = f"afr: round {number}/15 global accuracy={value:.6f} sites=4"
        data = {"id": "c002", "line": line, **parse_round_metric(line).as_event()}
        return Event(EventType.CANDIDATE_ROUND, data, 1.0, seq)

    model.apply_all(
        [
            Event(EventType.CANDIDATE_PROPOSED, {"id": "c002", "description": "x"}, 1.0, 1),
            Event(EventType.CANDIDATE_STARTED, {"id": "c002", "run_dir": "r"}, 1.0, 2),
            round_event(3, 2, 0.6),
            round_event(4, 3, 0.7),
            round_event(5, 2, 0.65),  # the stalled job was run once more
        ]
    )
    assert model.candidates["c002"].curve == [(2, 0.65)]


async def test_the_curve_draws_each_round_as_it_arrives(tmp_path):
    directory = fixed_campaign(tmp_path, running=True)  # c007 is running, no rounds yet
    write = Writer(directory)
    lines = (directory / "journal.jsonl").read_text().splitlines()
    write.seq, write.ts = len(lines), json.loads(lines[-1])["ts"]
    app = fixed_app(directory)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        curve = app.query_one("#curve", RoundCurve)
        assert not curve.display  # nothing to draw yet: the detail pane is unchanged
        for count, value in enumerate(RECORDED[:4], start=1):
            line = f"afr: round {count + 1}/15 global accuracy={value:.6f} sites=4"
            write(EventType.CANDIDATE_ROUND, step=1.0, id="c007", line=line, **parse_round_metric(line).as_event())
            await settle(pilot, lambda n=count: curve.shown is not None and len(curve.shown.points) == n,
                         what=f"round {count + 1} on the curve")  # fmt: skip
        table = app.query_one("#table")
        assert table.selected_id() == "c007" and curve.display and curve.shown.live
        # With a finished candidate without rounds selected, the running one's curve stays.
        assert table.select("c002")
        await settle(pilot, lambda: app.query_one("#detail").border_title == "candidate c002", what="c002")
        assert curve.display and curve.shown.cid == "c007" and curve.shown.live
        assert [y for _, y in curve.shown.points] == pytest.approx(RECORDED[:4])
        assert "c007 global accuracy per round (live)" in str(curve.plt.build())
        row = table.get_row("c007")
        assert any("round 5/15" in str(cell) for cell in row)  # the running row follows the rounds
