"""SVG snapshots of the cockpit: main screen, approval modal and help, at 120x40 and 80x24.

Deterministic by construction: a fixed campaign directory (fixed timestamps), a fixed clock,
a fixed system sample and no engine. Update with ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest
from tui_helpers import GPU_SAMPLE, fixed_app, fixed_campaign, loaded, settle

from afr_tui.screens import ApprovalModal, HelpScreen

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, tmp_path, size):
    app = fixed_app(fixed_campaign(tmp_path, running=True), GPU_SAMPLE)
    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES)
def test_approval_modal(snap_compare, tmp_path, size):
    app = fixed_app(fixed_campaign(tmp_path, awaiting=True))

    async def modal_open(pilot):
        await loaded(pilot)
        await settle(pilot, lambda: isinstance(pilot.app.screen, ApprovalModal), what="the approval modal")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=modal_open)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, tmp_path, size):
    app = fixed_app(fixed_campaign(tmp_path))

    async def help_open(pilot):
        await loaded(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help screen")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=help_open)
