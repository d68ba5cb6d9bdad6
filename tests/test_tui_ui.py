"""Cockpit tests that need no NVFlare: the event fold, the widgets, the control socket and the
CLI's errors. Campaigns here run on ``FakeRunner`` (tests/fakes.py); the controls' effect on a
real engine is tested in test_tui_engine.py."""

from __future__ import annotations

import io
import os
import stat
import sys
import threading
from pathlib import Path

import pytest
from fakes import FakeRunner
from rich.console import Console
from tui_helpers import TAG, RecordingLink, afr, fixed_app, fixed_campaign, loaded, settle

from afr_tui.app import CockpitApp
from afr_tui.controls import CONTROLS
from afr_tui.link import LocalLink
from afr_tui.model import CockpitModel
from afr_tui.screens import ApprovalModal, ChoiceModal, HelpScreen, TextPrompt
from afr_tui.widgets.plot import running_best
from afr_tui.widgets.table import parse_filter
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import Command, CommandType, EventType
from engine.control.server import CommandServer, ControlError, JournalFollower, engine_status, send_command
from engine.profile import load_profile
from engine.store.journal import Journal
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    return root


def fake_campaign(workspace, tag="ui-20261122", delay=0.05, **options) -> Campaign:
    profile = load_profile(workspace, "fed_heart_disease")
    return Campaign(
        workspace,
        profile,
        tag,
        CampaignOptions(**options),
        ScriptedProposer(),
        run_fn=FakeRunner(delay=delay, crash_when={"lr": 0.1}),
    )


def start(campaign: Campaign) -> threading.Thread:
    thread = threading.Thread(target=campaign.start, daemon=True)
    thread.start()
    return thread


# -- the fold -------------------------------------------------------------------------------------


def test_model_folds_a_fixed_campaign(tmp_path):
    directory = fixed_campaign(tmp_path, awaiting=True)
    model = CockpitModel()
    model.apply_all(Journal(directory / "journal.jsonl").events())
    assert model.tag == TAG and model.done == 6 and model.cap == 20
    assert model.best_id == "c003" and model.best_score == pytest.approx(0.6568)
    assert model.lift() == (pytest.approx(0.02), pytest.approx(100 * 0.02 / 0.6368))
    statuses = {cid: c.status for cid, c in model.candidates.items()}
    assert statuses == {
        "c001": "keep",
        "c002": "discard",
        "c003": "keep",
        "c004": "discard",
        "c005": "crash",
        "L001": "literature",
        "c006": "discard",
        "c007": "awaiting",
    }
    assert list(model.awaiting) == ["c007"] and model.candidates["c007"].diff.startswith("diff --git")
    assert [p[2] for p in model.points] == ["keep", "discard", "keep", "discard", "crash", "discard"]
    assert model.literature_marks == [5]
    assert running_best(model.points, True)[1][-1] == pytest.approx(0.6568)
    # replaying the same events again changes nothing
    before = len(model.candidates)
    assert not model.apply_all(Journal(directory / "journal.jsonl").events()).rows
    assert len(model.candidates) == before


def test_history_parses_only_what_the_cockpit_needs(tmp_path):
    from afr_tui import loaders

    directory = fixed_campaign(tmp_path, running=True)
    events = RecordingLink(directory).history()
    started = [e.data["id"] for e in events if e.type is EventType.CANDIDATE_STARTED]
    assert started == ["c007"]  # finished candidates' start, validation and finish are superseded
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    model = loaders.initial_model(RecordingLink(directory))
    assert model.running == ["c007"] and model.candidates["c007"].run_dir.endswith("runs/c007")
    assert model.done == 6 and model.candidates["c005"].status == "crash"


def test_header_counts_llm_tokens_and_cost_of_proposals_and_literature():
    from afr_tui.widgets.header import header_text
    from engine.control.events import Event

    model = CockpitModel()
    telemetry = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "cost_usd": 0.0125,
        "model": "openai/gpt-4o-mini",
    }
    model.apply_all(
        [
            Event(
                EventType.CAMPAIGN_STARTED,
                {"tag": "t", "profile": "p", "options": {"proposer": "llm"}},
                1.0,
                1,
            ),
            Event(EventType.CANDIDATE_PROPOSED, {"id": "c001", "telemetry": telemetry}, 2.0, 2),
            Event(EventType.TELEMETRY, {"phase": "literature", **telemetry}, 3.0, 3),
        ]
    )
    assert (model.tokens, model.cost, model.proposer) == (
        3000,
        pytest.approx(0.025),
        "llm/openai/gpt-4o-mini",
    )
    assert "tokens 3,000  $0.03" in header_text(model, 10.0).plain


def test_filter_words_name_statuses_and_text():
    assert parse_filter("keep FedProx status:crash") == ({"keep", "crash"}, ["fedprox"])
    assert parse_filter("") == (set(), [])


# -- the control socket and the journal follower --------------------------------------------------


def test_control_socket_is_private_and_answers_one_line(workspace):
    campaign = fake_campaign(workspace, approval="manual")
    with CommandServer(campaign) as server:
        mode = stat.S_IMODE(os.stat(server.path).st_mode)
        assert mode == 0o600
        status = engine_status(campaign.dir)
        assert status["ok"] and status["pid"] == os.getpid() and status["approval"] == "manual"
        with pytest.raises(ControlError, match="not awaiting approval"):
            send_command(campaign.dir, Command(CommandType.APPROVE, candidate="c404"))
        assert server.handle("not json")["ok"] is False
        assert server.handle('{"type": "fly"}')["ok"] is False
        # a second engine on the same campaign is refused
        with pytest.raises(ControlError, match="already running"):
            CommandServer(campaign).start()
    assert not server.path.exists()
    with pytest.raises(ControlError, match="is the campaign running"):
        engine_status(campaign.dir)


def test_stale_socket_is_replaced_and_long_paths_work(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)

    class Stub:
        tag, state, paused, approval, awaiting, running = "x", "running", False, "auto", {}, {}

        def command(self, command):
            self.last = command

    stub = Stub()
    (deep / "control.sock").write_text("")  # left by a dead engine
    with CommandServer(stub, deep):
        assert len(str(deep / "control.sock")) > 108
        send_command(deep, Command(CommandType.NOTE, note="hi"))
        assert stub.last.note == "hi"


def test_follower_never_returns_a_torn_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    follower = JournalFollower(path)
    assert follower.read() == []
    journal.append(EventType.NOTE, {"note": "one"})
    with open(path, "a") as handle:
        handle.write('{"type": "note", "ts": 1, "seq": 2, "da')
    assert [e.data["note"] for e in follower.read()] == ["one"]
    with open(path, "a") as handle:
        handle.write('ta": {"note": "two"}}\n')
    assert [e.data["note"] for e in follower.read()] == ["two"]


# -- the app on a fixed campaign ------------------------------------------------------------------


async def test_filter_sort_and_jump(tmp_path):
    app = fixed_app(fixed_campaign(tmp_path, running=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.query_one("#table")
        assert [row.key.value for row in table.ordered_rows][:2] == ["c007", "c006"]  # newest first
        await pilot.press("slash", *"crash", "enter")
        assert [row.key.value for row in table.ordered_rows] == ["c005"]
        await pilot.press("slash", "escape", "slash", *"fedadam", "enter")
        assert {row.key.value for row in table.ordered_rows} == {"c003", "c006"}
        await pilot.press("slash", "escape", "f")
        assert table.status_filter == "keep"
        assert {row.key.value for row in table.ordered_rows} == {"c001", "c003"}
        await pilot.press("f", "f", "f", "f", "f", "f", "f")  # all the way round to "all"
        assert table.status_filter is None and table.row_count == 8
        await pilot.press("o")  # sort by score, best first
        assert [row.key.value for row in table.ordered_rows][0] == "c003"
        await pilot.press("j")
        assert table.selected_id() == "c007"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_controls_send_commands_and_quit_asks(tmp_path):
    app = fixed_app(fixed_campaign(tmp_path, awaiting=True))
    link: RecordingLink = app.link
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settle(pilot, lambda: isinstance(app.screen, ApprovalModal), what="the approval modal")
        await pilot.press("escape")  # later...
        assert not isinstance(app.screen, ApprovalModal)
        app.query_one("#table").select("c007")
        await pilot.press("enter")  # ...and back
        await settle(pilot, lambda: isinstance(app.screen, ApprovalModal), what="the reopened modal")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, TextPrompt), what="the reason prompt")
        await pilot.press(*"too risky", "enter")
        await settle(pilot, lambda: link.sent, what="the reject command")
        assert link.sent[-1] == Command(CommandType.REJECT, candidate="c007", note="too risky")
        for key, expected in (
            ("space", CommandType.PAUSE),
            ("l", CommandType.FORCE_LITERATURE),
            ("m", CommandType.SET_APPROVAL),
            ("a", CommandType.APPROVE),
        ):
            count = len(link.sent)
            await pilot.press(key)
            await settle(pilot, lambda n=count: len(link.sent) > n, what=f"the command of {key}")
            assert link.sent[-1].type is expected
        assert link.sent[-2].value == "auto"  # the campaign was in manual mode
        table = app.query_one("#table")
        table.select("c003")
        await pilot.press("k", "enter")
        await settle(pilot, lambda: link.sent[-1].type is CommandType.OVERRIDE, what="the override")
        assert (link.sent[-1].candidate, link.sent[-1].value) == ("c003", "discard")
        await pilot.press("n", *"try FedProx", "enter")
        await settle(pilot, lambda: link.sent[-1].type is CommandType.NOTE, what="the note")
        await pilot.press("s")
        assert isinstance(app.screen, ChoiceModal)
        await pilot.press("escape")  # cancelled: nothing sent
        assert link.sent[-1].type is CommandType.NOTE
        await pilot.press("s", "y")
        await settle(pilot, lambda: link.sent[-1].type is CommandType.STOP, what="the stop")
        await pilot.press("q")
        assert isinstance(app.screen, ChoiceModal)
        await pilot.press("l")
    assert app.return_value == "left"



async def test_a_campaign_that_ends_under_the_quit_question_just_quits(tmp_path):
    directory = fixed_campaign(tmp_path, running=True)
    app = fixed_app(directory)
    link: RecordingLink = app.link
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("q")
        assert isinstance(app.screen, ChoiceModal)
        # A stop sent from another cockpit lands while the question is up.
        Journal(directory / "journal.jsonl").append(
            EventType.STOPPED, {"phase": "done", "reason": "stopped by the human"}
        )
        await settle(pilot, lambda: app.model.ended, what="the campaign's end")
        await pilot.press("s")  # "Stop the campaign": there is none left to stop
    assert app.return_value == "ended" and link.sent == []

def test_every_control_has_a_stable_id_and_a_palette_entry(tmp_path):
    app = fixed_app(fixed_campaign(tmp_path))
    ids = {binding.id for binding in CockpitApp.BINDINGS}
    for _key, action, *_ in CONTROLS:
        assert f"cockpit.{action}" in ids
    keys = {key for key, *_ in CONTROLS}
    assert {"space", "a", "r", "l", "m", "k", "n", "s", "q", "question_mark"} <= keys

    async def run():
        async with app.run_test() as pilot:
            await loaded(pilot)
            titles = [command.title for command in app.get_system_commands(app.screen)]
            for _, _, label, _, _ in CONTROLS:
                assert any(title.startswith(label) for title in titles), label

    import asyncio

    asyncio.run(run())


async def test_compact_layout_cycles_panes(tmp_path):
    app = fixed_app(fixed_campaign(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.compact
        assert app.query_one("#detail").display and not app.query_one("#plot").display
        await pilot.press("v")
        assert app.query_one("#log").display and not app.query_one("#detail").display
        await pilot.resize_terminal(140, 45)
        await pilot.pause(0.2)
        assert not app.compact and all(
            app.query_one(f"#{name}").display for name in ("plot", "log", "system")
        )


# -- live campaigns on the fake runner ------------------------------------------------------------


async def test_cockpit_follows_a_campaign_and_toasts(workspace):
    campaign = fake_campaign(workspace, max_candidates=8)
    app = CockpitApp(LocalLink(campaign), sample_seconds=0.5)
    notices = []
    app.notify = lambda message, **kw: notices.append((kw.get("title"), message))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        thread = start(campaign)
        await settle(pilot, lambda: app.model.ended, timeout=60, what="the campaign's end")
        await pilot.pause(0.3)
        thread.join(10)
        table = app.query_one("#table")
        assert table.row_count == 8 and app.model.done == 8
        rows = Ledger(campaign.dir).rows()
        best = max((r for r in rows if r.status == "keep"), key=lambda r: r.score)
        assert app.model.best_id == best.artifacts.removeprefix("runs/")
        assert str(table.get_cell(app.model.best_id, "id")).startswith("★")
        assert len(app.model.points) == 8
    titles = [title for title, _ in notices]
    assert "New best" in titles and "Campaign finished" in titles


async def test_manual_approval_on_the_fake_runner(workspace):
    campaign = fake_campaign(workspace, max_candidates=2, approval="manual")
    app = CockpitApp(LocalLink(campaign), sample_seconds=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        thread = start(campaign)
        await settle(pilot, lambda: isinstance(app.screen, ApprovalModal), what="c001's modal")
        assert app.screen.cid == "c001"
        await pilot.press("a")
        await settle(
            pilot,
            lambda: isinstance(app.screen, ApprovalModal) and app.screen.cid == "c002",
            what="c002's modal",
        )
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, TextPrompt), what="the reason prompt")
        await pilot.press(*"not now", "enter")
        await settle(
            pilot,
            lambda: isinstance(app.screen, ApprovalModal) and app.screen.cid == "c003",
            what="c003's modal",
        )
        await pilot.press("escape", "s", "y")
        await settle(pilot, lambda: app.model.ended, what="the stop")
        thread.join(10)
    records = Ledger(campaign.dir).latest_candidates()
    assert records["c001"]["status"] == "keep"
    assert records["c002"]["status"] == "rejected" and records["c002"]["human"]["note"] == "not now"


# -- the command line -----------------------------------------------------------------------------


def test_attach_errors_are_one_line(workspace):
    unknown = afr("attach", "nope-20261122", cwd=workspace)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "no campaign" in unknown.stderr
    campaign = fake_campaign(workspace, max_candidates=1)
    campaign.start()
    dead = afr("attach", cwd=workspace)
    assert dead.returncode == 2 and "no running engine (last state: finished)" in dead.stderr
    assert "Traceback" not in dead.stderr


async def test_diff_view_shows_a_code_change_against_its_parent(workspace):
    from engine.agent.base import CandidateSpec

    client = (workspace / "tasks/fed_heart_disease/client.py").read_text()
    edited = client.replace(
        "loss_fn = torch.nn.BCEWithLogitsLoss()",
        "loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(0.8))",
    )
    specs = [
        CandidateSpec("baseline", "baseline", {}),
        CandidateSpec(
            "class-weighted BCE", "code", {"lr": 0.01}, {"tasks/fed_heart_disease/client.py": edited}
        ),
    ]

    class Listed(ScriptedProposer):
        def propose(self, context):
            return specs.pop(0) if specs else super().propose(context)

    profile = load_profile(workspace, "fed_heart_disease")
    campaign = Campaign(
        workspace, profile, "diff-20261122", CampaignOptions(max_candidates=2), Listed(), run_fn=FakeRunner()
    )
    campaign.start()
    app = CockpitApp(LocalLink(campaign), sample_seconds=60)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: app.loaded, what="the journal")
        assert app.query_one("#table").selected_id() == "c002"
        await settle(pilot, lambda: "c002" in app.detail_cache, what="c002's diff")
        record, diff = app.detail_cache["c002"]
        assert "+    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(0.8))" in diff
        assert record["validation"]["contract"] == "ok"
        await pilot.pause(0.1)
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(app.query_one("#detail").shown)
        text = console.export_text()
        assert "args: lr 0.001 → 0.01" in text and "validation: args ✓" in text and "surface ✓" in text
        assert "+    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight" in text


def test_nvml_panel_names_the_campaigns_processes(monkeypatch):
    """No GPU here: a stand-in ``pynvml`` module exercises the NVML path of the sampler."""
    import types

    from afr_tui.widgets.system_panel import SystemPanel
    from engine.control.telemetry import SystemSampler

    ours, theirs = os.getpid(), 1
    fake = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda index: "gpu0",
        nvmlDeviceGetName=lambda handle: b"NVIDIA H100 80GB HBM3",
        nvmlDeviceGetUtilizationRates=lambda handle: types.SimpleNamespace(gpu=87),
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(used=20 * 2**30, total=80 * 2**30),
        nvmlDeviceGetTemperature=lambda handle, sensor: 61,
        nvmlDeviceGetPowerUsage=lambda handle: 312_000,
        nvmlDeviceGetComputeRunningProcesses=lambda handle: [
            types.SimpleNamespace(pid=ours, usedGpuMemory=2**30),
            types.SimpleNamespace(pid=theirs, usedGpuMemory=2**30),
        ],
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sample = SystemSampler(engine_pid=ours).sample()
    assert len(sample.gpus) == 1 and not sample.gpu_note
    gpu = sample.gpus[0]
    assert (gpu.name, gpu.utilization, gpu.temperature, gpu.power) == (
        "NVIDIA H100 80GB HBM3",
        87.0,
        61.0,
        312.0,
    )
    assert [pid for pid, _, _ in gpu.processes] == [ours]  # another user's job is not the campaign's
    text = SystemPanel().render_sample(sample).plain
    assert "GPU0 NVIDIA H100 80GB HBM3" in text and "util  87%" in text and f"pid {ours}" in text


def test_eta_comes_from_candidate_run_times_not_downtime():
    from afr_tui.model import CandidateView

    model = CockpitModel()
    now = 1_800_000_000.0
    model.load_meta({"tag": TAG, "options": {"max_candidates": 10, "parallel": 2}, "created": now - 86_400})
    for number in (1, 2):
        cid = f"c{number:03d}"
        model.candidates[cid] = CandidateView(cid, number, status="discard", runtime=60.0)
        model.points.append((number, 0.7, "discard"))
    assert model.eta_seconds(now) == pytest.approx(8 * 60.0 / 2)  # not 8 x half a day
