"""The cockpit as a newcomer meets it (issue 13): a live log at any length, truthful pause states."""

from __future__ import annotations

import re

from tui_helpers import Writer, fixed_app, fixed_campaign, loaded, settle

from afr_tui.widgets.logpane import LogPane
from engine.control.events import EventType


def screen_text(app) -> str:
    """What the terminal shows, as text (the SVG screenshot, tags and entities dropped)."""
    svg = app.export_screenshot()
    text = re.sub(r"<[^>]+>", "", svg)
    return text.replace("&#160;", " ").replace("&amp;", "&")


async def test_the_log_pane_follows_to_the_last_line_of_thousands(tmp_path):
    directory = fixed_campaign(tmp_path, running=True)
    log_path = directory / "runs" / "c007" / "job.log"
    log_path.parent.mkdir(parents=True)
    log_path.write_text("")
    app = fixed_app(directory)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        pane = app.query_one("#log", LogPane)
        await settle(pilot, lambda: pane.following == "c007", what="the log pane following c007")
        for chunk in range(30):  # 3,000 lines, written as a job writes them, 100 at a time
            with open(log_path, "a") as handle:
                handle.writelines(f"round-{chunk:02d} step line-{chunk * 100 + i:05d}\n" for i in range(100))
            await pilot.pause(0.1)
        await settle(
            pilot, lambda: "line-02999" in screen_text(app), timeout=30, what="the last line on screen"
        )
        assert "line-02999" in screen_text(app)
        with open(log_path, "a") as handle:
            handle.write("round-30 step line-03000\n")
        await settle(pilot, lambda: "line-03000" in screen_text(app), timeout=30, what="one more line")


async def test_pause_while_a_candidate_runs_says_pausing_then_the_header_gives_the_reason(tmp_path):
    directory = fixed_campaign(tmp_path, running=True)
    app = fixed_app(directory)
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        write = Writer(directory)
        write.seq = app.model.last_seq
        write.ts = 1_795_001_000.0
        write(EventType.PAUSED, note="the proposer failed 1 time: auth error")
        await settle(pilot, lambda: app.model.paused, what="the pause")
        await pilot.pause(0.5)
        titles = [n.title for n in app._notifications]
        assert "Paused" not in titles and "Pausing after the running candidate" in titles
        write(EventType.CANDIDATE_FINISHED, id="c007", status="ok", score=0.6, runtime_seconds=30.0, error="")
        write(EventType.STATE, state="paused")
        await settle(pilot, lambda: app.model.state == "paused", what="the paused state")
        await pilot.pause(0.5)
        assert "paused (the proposer failed 1 time: auth error)" in screen_text(app)
        assert "Paused" in [n.title for n in app._notifications]


async def test_a_literature_row_says_literature_once(tmp_path):
    directory = fixed_campaign(tmp_path)
    app = fixed_app(directory)
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        write = Writer(directory)
        write.seq = app.model.last_seq
        write.ts = 1_795_001_000.0
        write(EventType.LITERATURE_STARTED, reason="forced by the human")
        selected = ["literature: FedProx proximal term (mu 0.01) [src: arXiv:1812.06127]"]
        write(EventType.LITERATURE_FINISHED, worksheet="literature/002.md", selected=selected)
        await settle(pilot, lambda: "L002" in app.model.candidates, what="the second literature row")
        await pilot.pause(0.5)
        assert app.model.candidates["L002"].description.startswith("literature: FedProx")
        assert "literature: literature:" not in screen_text(app)
