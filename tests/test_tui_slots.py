"""The cockpit shows which slot runs what: each running candidate's phase and GPU, each GPU's owner."""

from __future__ import annotations

import time

from afr_tui.model import CockpitModel
from afr_tui.widgets.system_panel import SystemPanel
from afr_tui.widgets.table import status_label
from engine.control.events import Event, EventType
from engine.control.telemetry import GpuStat, HostStat, Sample


def event(seq: int, type_: EventType, **data) -> Event:
    return Event(type_, data, time.time(), seq)


def test_running_candidates_show_their_round_and_gpu_and_each_gpu_its_owner():
    model = CockpitModel()
    events = [
        event(1, EventType.CANDIDATE_PROPOSED, id="c002", description="a", args={}, parent="p"),
        event(2, EventType.CANDIDATE_PROPOSED, id="c003", description="b", args={}, parent="p"),
        event(3, EventType.CANDIDATE_STARTED, id="c002", run_dir="runs/c002", gpu="0"),
        event(4, EventType.CANDIDATE_STARTED, id="c003", run_dir="runs/c003", gpu="1"),
        event(5, EventType.CANDIDATE_LOG, id="c002", line="afr: round 7/15 global accuracy=0.61 sites=4"),
        event(6, EventType.CANDIDATE_LOG, id="c003", line="afr: final evaluation"),
    ]
    model.apply_all(events)
    assert status_label(model.candidates["c002"]) == "▶ round 7/15 gpu0"
    assert status_label(model.candidates["c003"]) == "▶ final evaluation gpu1"
    assert model.gpu_owners() == {"0": "c002", "1": "c003"}
    gpus = [GpuStat(i, "H100", 50.0, 1024.0, 80 * 1024.0, 40.0, 300.0, []) for i in range(3)]
    host = HostStat(10.0, 16, 10.0, 128.0, 5.0, 1.0, 9)
    text = SystemPanel().render_sample(Sample(gpus, host), model.gpu_owners()).plain
    lines = [line for line in text.splitlines() if line.startswith("GPU")]
    assert lines[0].endswith("▶ c002") and lines[1].endswith("▶ c003") and "▶" not in lines[2]
    model.apply(
        event(7, EventType.CANDIDATE_FINISHED, id="c002", status="ok", score=0.7, runtime_seconds=9.0)
    )
    model.apply(event(8, EventType.CANDIDATE_REVIEWED, id="c002", status="keep", score=0.7, description="a"))
    assert model.gpu_owners() == {"1": "c003"}
