"""Run slots and GPUs: one candidate per visible GPU, all busy at once (fake NVML, fake jobs)."""

from __future__ import annotations

import sys
import threading
import types

import pytest
from fakes import FakeRunner

from afr.common import gpu_ids
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import EventType
from engine.profile import load_profile
from engine.store.workspace import init_workspace


@pytest.fixture
def workspace(tmp_path):
    return init_workspace(tmp_path / "ws")[0]


def fake_nvml(count: int) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetCount = lambda: count
    return module


class PlacementRunner(FakeRunner):
    """Records which GPU each run was given and how many ran at once."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.lock = threading.Lock()
        self.active: dict[str, str | None] = {}
        self.most_at_once: dict[str, str | None] = {}

    def __call__(self, root, profile, args, run_dir, **options):
        with self.lock:
            self.active[run_dir.name] = options.get("gpu")
            if len(self.active) > len(self.most_at_once):
                self.most_at_once = dict(self.active)
        try:
            return super().__call__(root, profile, args, run_dir, **options)
        finally:
            with self.lock:
                self.active.pop(run_dir.name)


def test_four_gpus_give_four_slots_each_busy_with_its_own_candidate(workspace, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(4))
    gpus = gpu_ids()
    assert gpus == ["0", "1", "2", "3"]
    # CIFAR-10 names no width: one slot per GPU; Heart is a CPU task and says 1.
    width = load_profile(workspace, "cifar10").parallel_width(None, len(gpus))
    assert width == 4 and load_profile(workspace, "cifar10").parallel_width(2, len(gpus)) == 2
    profile = load_profile(workspace, "fed_heart_disease")
    assert profile.parallel_width(None, len(gpus)) == 1
    runner = PlacementRunner(delay=1.5)
    campaign = Campaign(
        workspace,
        profile,
        "gpus-20261125",
        CampaignOptions(max_candidates=5, parallel=width),
        ScriptedProposer(),
        run_fn=runner,
        gpus=gpus,
    )
    events = []
    campaign.subscribe(events.append)
    campaign.start()
    assert len(campaign.ledger.rows()) == 5
    # After the baseline, four candidates ran at once, one on each device.
    assert sorted(runner.most_at_once.values()) == ["0", "1", "2", "3"]
    placed = {e.data["id"]: e.data["gpu"] for e in events if e.type is EventType.CANDIDATE_STARTED}
    assert placed["c001"] in gpus and sorted(placed[c] for c in ("c002", "c003", "c004", "c005")) == gpus
