"""Typed, JSON-serialisable events the engine publishes and commands it accepts.

Events go to ``journal.jsonl`` and to in-process subscribers; because they serialise, a
cockpit in another process can follow a campaign from its journal alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum


class EventType(str, Enum):
    CAMPAIGN_STARTED = "campaign_started"
    CAMPAIGN_RESUMED = "campaign_resumed"
    CANDIDATE_PROPOSED = "candidate_proposed"
    CANDIDATE_AWAITING_APPROVAL = "candidate_awaiting_approval"
    CANDIDATE_VALIDATED = "candidate_validated"
    CANDIDATE_REJECTED = "candidate_rejected"
    CANDIDATE_STARTED = "candidate_started"
    CANDIDATE_LOG = "candidate_log"
    CANDIDATE_ROUND = "candidate_round"  # a running job's per-round global metric (engine/run/phases.py)
    CANDIDATE_FINISHED = "candidate_finished"
    CANDIDATE_CONFIRMING = "candidate_confirming"  # re-runs on the confirmation seeds before a keep
    CANDIDATE_REVIEWED = "candidate_reviewed"
    DECISION = "decision"
    NOTE = "note"
    LITERATURE_STARTED = "literature_started"
    LITERATURE_FINISHED = "literature_finished"
    WATCHDOG = "watchdog"
    PAUSED = "paused"
    RESUMED = "resumed"
    APPROVAL_MODE = "approval_mode"
    STOPPED = "stopped"
    FINISHED = "finished"
    STATE = "state"
    TELEMETRY = "telemetry"
    ERROR = "error"
    LEDGER_REPAIRED = "ledger_repaired"  # a torn line cut and the rows it cost restored (resume)


class CommandType(str, Enum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    APPROVE = "approve"
    REJECT = "reject"
    FORCE_LITERATURE = "force_literature"
    SET_APPROVAL = "set_approval"
    OVERRIDE = "override"
    NOTE = "note"


@dataclass(frozen=True)
class Event:
    type: EventType
    data: dict = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    seq: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.type.value, "ts": self.ts, "seq": self.seq, "data": self.data},
            sort_keys=True,
            default=str,
        )

    @classmethod
    def from_json(cls, line: str) -> Event:
        raw = json.loads(line)
        return cls(EventType(raw["type"]), raw.get("data") or {}, raw["ts"], raw.get("seq", 0))


@dataclass(frozen=True)
class Command:
    """A human (or client) instruction. ``candidate`` names the target where one is needed;
    ``value`` carries the approval mode (auto/manual) or the override status (keep/discard)."""

    type: CommandType
    candidate: str | None = None
    note: str = ""
    value: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.type.value, "candidate": self.candidate, "note": self.note, "value": self.value}
        )

    @classmethod
    def from_json(cls, line: str) -> Command:
        raw = json.loads(line)
        return cls(CommandType(raw["type"]), raw.get("candidate"), raw.get("note") or "", raw.get("value"))
