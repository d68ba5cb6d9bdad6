"""Typed messages that worker threads post to the cockpit (the only way they reach the UI)."""

from __future__ import annotations

from textual.message import Message

from afr_tui.model import CockpitModel
from engine.control.events import Event
from engine.control.telemetry import Sample


class ModelLoaded(Message):
    """The journal so far, folded off the UI thread."""

    def __init__(self, model: CockpitModel) -> None:
        super().__init__()
        self.model = model


class EventsArrived(Message):
    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events


class DetailReady(Message):
    def __init__(self, cid: str, record: dict | None, diff: str | None) -> None:
        super().__init__()
        self.cid = cid
        self.record = record
        self.diff = diff


class LogLines(Message):
    def __init__(self, cid: str, lines: list[str]) -> None:
        super().__init__()
        self.cid = cid
        self.lines = lines


class SampleReady(Message):
    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample


class EngineGone(Message):
    """The engine process is no longer there although the campaign never ended."""


class CommandFailed(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
