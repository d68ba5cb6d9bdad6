"""The header at 80 and 120 columns with long values: its fields never run into each other.

Snapshots of the header alone (a long tag, an LLM proposer with a long model name, four GPUs
busy, a sandbox field, a paused campaign with a long reason, a literature review with tokens
spent), and the fitting rule checked at every width from 30 to 200 columns. Update with
``pytest tests/test_tui_header.py --snapshot-update``.
"""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from afr_tui.model import CockpitModel
from afr_tui.widgets.header import SEPARATOR, CampaignHeader, Field, fit, header_text
from engine.control.events import Event, EventType

CREATED = 1_795_000_000.0
NOW = CREATED + 5 * 3600 + 754
LONG_TAG = "gpu-node-07-fed-heart-disease-fedprox-momentum-sweep-20261125"
PAUSE_REASON = "the proposer failed 3 times: RateLimitError: the provider's token bucket is empty"


def busy_model(state: str) -> CockpitModel:
    """A 4-slot campaign, 12 candidates reviewed, four running on GPUs 0-3, in ``state``:
    "paused" (pausing after the running ones, with a long reason) or "literature"."""
    options = {"max_candidates": 200, "parallel": 4, "proposer": "llm", "model": "openai/gpt-4o-mini-2024-07-18"}
    events = [Event(EventType.CAMPAIGN_STARTED, {"tag": LONG_TAG, "profile": "fed_heart_disease",
                                                 "options": options}, CREATED, 1),
              Event(EventType.STATE, {"state": "running"}, CREATED, 2)]  # fmt: skip
    seq = 2
    for number in range(1, 17):
        cid = f"c{number:03d}"
        seq += 1
        events.append(Event(EventType.CANDIDATE_PROPOSED, {"id": cid, "description": "x", "telemetry": {
            "prompt_tokens": 41_000, "completion_tokens": 2_300, "cost_usd": 0.0123}}, CREATED + seq, seq))  # fmt: skip
        seq += 1
        events.append(Event(EventType.CANDIDATE_STARTED, {"id": cid, "run_dir": "r", "gpu": str((number - 1) % 4)},
                            CREATED + seq, seq))  # fmt: skip
        if number <= 12:
            seq += 1
            score = 0.6368 + 0.004 * (number % 5)
            best = {"score": 0.6528, "artifacts": "runs/c004", "baseline": 0.6368}
            events.append(Event(EventType.CANDIDATE_REVIEWED, {"id": cid, "status": "keep" if number in (1, 4) else
                                "discard", "score": score, "runtime_seconds": 1500.0, "best": best}, CREATED + seq, seq))  # fmt: skip
    seq += 1
    if state == "paused":
        events.append(Event(EventType.PAUSED, {"note": PAUSE_REASON}, CREATED + seq, seq))
    else:
        events.append(Event(EventType.STATE, {"state": "literature"}, CREATED + seq, seq))
    model = CockpitModel()
    model.apply_all(events)
    # The run sandbox's field (where the engine reports one): too long for 80 columns when paused.
    model.sandbox = "bwrap (no network, GPU passthrough)" if state == "paused" else "bwrap"
    return model


class HeaderApp(App[None]):
    """The cockpit's header alone, as the cockpit draws it at this width (compact under 100 columns)."""

    def __init__(self, model: CockpitModel) -> None:
        super().__init__()
        self.model = model

    def compose(self) -> ComposeResult:
        yield CampaignHeader(id="header")

    def on_resize(self, event) -> None:
        self.query_one(CampaignHeader).show(self.model, NOW, compact=event.size.width < 100)


SIZES = [pytest.param((80, 3), id="80"), pytest.param((120, 3), id="120")]


@pytest.mark.parametrize("state", ["paused", "literature"])
@pytest.mark.parametrize("size", SIZES)
def test_header_with_long_values(snap_compare, size, state):
    assert snap_compare(HeaderApp(busy_model(state)), terminal_size=size)


@pytest.mark.parametrize("state", ["paused", "literature"])
@pytest.mark.parametrize("compact", [True, False])
def test_header_fields_never_run_into_each_other(state, compact):
    model = busy_model(state)
    full = header_text(model, NOW, compact).plain.split("\n")
    for width in range(30, 201):
        lines = header_text(model, NOW, compact, width).plain.split("\n")
        for line, whole in zip(lines, full, strict=True):
            assert len(line) <= width, (width, line)
            # What is left is whole fields of the unfitted line, in order, two spaces apart; only
            # the tag and the state may be cut, and then they end in an ellipsis.
            rest = whole
            for part in line.split(SEPARATOR):
                if not part:
                    continue
                shown = part.removesuffix("…")
                assert shown.strip() and shown in rest, (width, part, line)
                rest = rest[rest.index(shown) + len(shown) :]
    # At 80 and 120 columns the fields that matter are all there.
    for width in (78, 118):
        first, second = header_text(model, NOW, width < 100, width).plain.split("\n")
        assert "12/200" in first and "best 0.6528" in second and "lift +0.0160" in second
        assert ("pausing" if state == "paused" else "literature") in first
    wide = header_text(model, NOW, False, 118).plain
    assert "▶ 4/4 gpu0,1,2,3" in wide and "sandbox: bwrap" in wide
    assert ("sandbox: bwrap" in header_text(model, NOW, True, 78).plain) == (state == "literature")


def test_fit_drops_the_least_important_field_first_and_cuts_only_shrinkable_ones():
    fields = [
        Field(Text("a-very-long-campaign-tag-20261125"), shrink=True),
        Field(Text("keep-me"), 1),
        Field(Text("drop-me-first"), 3),
        Field(Text("then-me"), 2),
    ]
    assert fit(list(fields), 200).plain == "a-very-long-campaign-tag-20261125  keep-me  drop-me-first  then-me"
    assert fit(list(fields), 60).plain == "a-very-long-campaign-tag-20261125  keep-me  then-me"
    assert fit(list(fields), 44).plain == "a-very-long-campaign-tag-…  keep-me  then-me"  # cut, not mixed
    assert fit(list(fields), 30).plain == "a-very-long…  keep-me  then-me"
    assert fit(list(fields), 25).plain == "a-very-long-cam…  keep-me"  # then-me goes: the tag regrows
