"""The cockpit's controls on a real engine: Pilot drives the keys, the test reads the ledger.

The in-process test runs a real ``Campaign`` with the real NVFlare runner at the smoke budget
(one job, and a second one aborted as it starts: under a minute here); the attached test runs ``afr run --detach`` as a separate
engine process and never starts a job (every candidate waits for approval).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from tui_helpers import afr, settle, start_detached

from afr_tui.app import CockpitApp
from afr_tui.link import AttachedLink, LocalLink
from afr_tui.screens import ApprovalModal, ChoiceModal, TextPrompt
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import Command, CommandType, EventType
from engine.control.server import engine_alive, engine_status
from engine.profile import load_profile
from engine.store.journal import Journal
from engine.store.ledger import Ledger
from engine.store.workspace import init_workspace

RUN_SECONDS = 600  # a smoke job takes 20-40 s alone; a stalled one is retried after 240 s of silence


@pytest.fixture
def workspace(tmp_path):
    root, _ = init_workspace(tmp_path / "ws")
    return root


def events_of(campaign, type_):
    return [e for e in Journal(campaign.dir / "journal.jsonl").events() if e.type is type_]


def records(campaign):
    return Ledger(campaign.dir).latest_candidates()


@pytest.mark.nvflare
async def test_every_control_on_a_real_campaign(workspace):
    profile = load_profile(workspace, "fed_heart_disease")
    options = CampaignOptions(max_candidates=6, approval="manual", smoke=True, confirm=False)
    campaign = Campaign(workspace, profile, "tui-real-20261122", options, ScriptedProposer())
    app = CockpitApp(LocalLink(campaign), sample_seconds=1.0)
    thread = threading.Thread(target=campaign.start, daemon=True)
    async with app.run_test(size=(120, 40)) as pilot:
        thread.start()
        # approve: the baseline waits in the modal, then runs on NVFlare
        await settle(pilot, lambda: isinstance(app.screen, ApprovalModal), what="c001's modal")
        await pilot.press("a")
        await settle(pilot, lambda: "c001" in app.model.running, timeout=60, what="c001 running")
        await settle(
            pilot,
            lambda: records(campaign).get("c001", {}).get("status") == "keep",
            timeout=RUN_SECONDS,
            what="c001 kept",
        )
        # pause while c002 waits, then reject it with a note
        await settle(
            pilot,
            lambda: isinstance(app.screen, ApprovalModal) and app.screen.cid == "c002",
            timeout=60,
            what="c002's modal",
        )
        await pilot.press("escape", "space")
        await settle(pilot, lambda: app.model.paused, what="the pause")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, TextPrompt), what="the reason prompt")
        await pilot.press(*"too risky for a smoke run", "enter")
        await settle(
            pilot, lambda: records(campaign).get("c002", {}).get("status") == "rejected", what="c002 rejected"
        )
        assert records(campaign)["c002"]["human"] == {
            "decision": "reject",
            "note": "too risky for a smoke run",
        }
        await settle(pilot, lambda: campaign.state == "paused", what="the paused loop")
        proposed = len(events_of(campaign, EventType.CANDIDATE_PROPOSED))
        await pilot.pause(2.5)
        assert len(events_of(campaign, EventType.CANDIDATE_PROPOSED)) == proposed  # paused: nothing new
        # while paused: override c001 to discard, and a note to the agent
        app.query_one("#table").select("c001")
        await pilot.press("k")
        await settle(pilot, lambda: isinstance(app.screen, TextPrompt), what="the override prompt")
        await pilot.press(*"checking the override", "enter")
        await settle(pilot, lambda: Ledger(campaign.dir).rows()[0].status == "discard", what="the override")
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, TextPrompt), what="the note prompt")
        await pilot.press(*"try FedProx next", "enter")
        await settle(pilot, lambda: "try FedProx next" in campaign.notes, what="the note")
        # force literature, then resume: a literature row before the next candidate
        await pilot.press("l", "space")
        await settle(
            pilot,
            lambda: any(r.status == "literature" for r in Ledger(campaign.dir).rows()),
            timeout=120,
            what="the literature row",
        )
        assert any(c.status == "literature" for c in app.model.candidates.values())
        # approval mode to auto: the waiting candidate runs without a decision
        await settle(pilot, lambda: bool(app.model.awaiting), timeout=60, what="the next candidate waiting")
        waiting = next(iter(app.model.awaiting))
        await pilot.press("m")
        await settle(pilot, lambda: campaign.approval == "auto", what="auto approval")
        await settle(pilot, lambda: waiting in campaign.running, timeout=60, what=f"{waiting} running")
        assert not isinstance(app.screen, ApprovalModal)
        # stop: asks first; the campaign stops after the running candidate, whose job we abort
        # (as a second Ctrl-C does) so the test pays for one NVFlare job less
        await pilot.press("s", "y")
        await settle(pilot, lambda: app.model.stopping, what="the stop request")
        await settle(
            pilot, lambda: getattr(campaign.running.get(waiting), "token", None), timeout=60, what="the job"
        )
        campaign.kill_running()
        await settle(pilot, lambda: app.model.ended, timeout=RUN_SECONDS, what="the stop")
        thread.join(30)
    assert not thread.is_alive() and campaign.state == "stopped"
    assert records(campaign)[waiting]["status"] in ("keep", "discard", "crash", "aborted")
    assert Journal(campaign.dir / "journal.jsonl").events()[-1].data == {
        "phase": "done",
        "reason": "aborted by the human",  # kill_running is the second Ctrl-C: an abort
    }


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of ours still answers kill(0); its state says it is gone
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(")")[-1].split()[0] == "Z"


async def test_quit_leaving_it_running_and_two_cockpits(workspace):
    tag = "tui-detach-20261122"
    directory = start_detached(workspace, tag)
    pid = engine_status(directory)["pid"]
    try:
        first = CockpitApp(AttachedLink(directory), sample_seconds=1.0)
        async with first.run_test(size=(120, 40)) as pilot:
            await settle(pilot, lambda: isinstance(first.screen, ApprovalModal), what="c001's modal")
            await pilot.press("escape", "q")
            assert isinstance(first.screen, ChoiceModal)
            await pilot.press("l")
        assert first.return_value == "left"
        time.sleep(1.0)
        assert engine_alive(directory) and not gone(pid)  # quitting left the engine running

        second = CockpitApp(AttachedLink(directory), sample_seconds=1.0)
        other = AttachedLink(directory)  # a second cockpit's link on the same campaign
        async with second.run_test(size=(80, 24)) as pilot:
            await settle(pilot, lambda: isinstance(second.screen, ApprovalModal), what="c001's modal again")
            other.send(Command(CommandType.REJECT, candidate="c001", note="from the other cockpit"))
            await settle(
                pilot,
                lambda: second.model.candidates["c001"].status == "rejected",
                what="the other cockpit's decision",
            )
            await settle(
                pilot,
                lambda: isinstance(second.screen, ApprovalModal) and second.screen.cid == "c002",
                what="c002's modal",
            )
            await pilot.press("s", "y")
            await settle(pilot, lambda: second.model.ended, what="the stop")
            await pilot.press("q")
        deadline = time.monotonic() + 30
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gone(pid) and not engine_alive(directory)
        record = Ledger(directory).latest_candidates()["c001"]
        assert record["human"]["note"] == "from the other cockpit"
    finally:
        if not gone(pid):
            os.kill(pid, 9)


async def test_a_dead_engine_is_reported_and_attach_refuses(workspace):
    tag = "tui-dead-20261122"
    directory = start_detached(workspace, tag)
    pid = engine_status(directory)["pid"]
    app = CockpitApp(AttachedLink(directory), sample_seconds=1.0)
    notices = []
    app.notify = lambda message, **kw: notices.append((kw.get("title"), message))  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, lambda: isinstance(app.screen, ApprovalModal), what="c001's modal")
            os.kill(pid, 9)
            await settle(pilot, lambda: app.model.state == "engine gone", what="the engine's death")
            assert "engine gone" in app.query_one("#header").render().plain
            await pilot.press("escape", "q")  # nothing left to stop: quits at once
        assert app.return_value == "ended"
        assert [message for title, message in notices if title == "Engine gone"][0].endswith(
            f"`afr resume {tag}`"
        )
    finally:
        if not gone(pid):
            os.kill(pid, 9)
    attach = afr("attach", tag, cwd=workspace)
    assert (
        attach.returncode == 2 and "no running engine" in attach.stderr and "Traceback" not in attach.stderr
    )
