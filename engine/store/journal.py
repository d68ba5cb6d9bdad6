"""``journal.jsonl``: every event of a campaign, appended under a lock, readable by any process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from engine.control.events import Event, EventType
from engine.store.ledger import LedgerError, locked_append


def read_events(path: Path) -> list[Event]:
    """The complete events of a journal file; a malformed line is a one-line error naming file and line."""
    events = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            events.append(Event.from_json(line))
        except (ValueError, KeyError, TypeError) as error:
            raise LedgerError(f"{path} line {number}: not an event ({type(error).__name__})") from None
    return events


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seq = max((event.seq for event in self.events()), default=0)

    def append(self, type_: EventType, data: dict) -> Event:
        with self._lock:
            self._seq += 1
            event = Event(type_, data, time.time(), self._seq)
            locked_append(self.path, event.to_json() + "\n")
        return event

    def events(self) -> list[Event]:
        """All complete events (a torn last line from a crash is ignored)."""
        if not self.path.exists():
            return []
        return read_events(self.path)

    def proposed_count(self) -> int:
        return sum(1 for event in self.events() if event.type is EventType.CANDIDATE_PROPOSED)

    def unfinished(self, final_ids: set[str]) -> dict[str, dict]:
        """Candidates that started running but have no final record: what a crash interrupted.

        Each entry has the proposal, the start time, the run directory and the run token.
        """
        found: dict[str, dict] = {}
        for event in self.events():
            cid = event.data.get("id")
            if event.type is EventType.CANDIDATE_PROPOSED:
                found.setdefault(cid, {})["proposal"] = event.data
            elif event.type is EventType.CANDIDATE_STARTED:
                found.setdefault(cid, {}).update(started=event.ts, run_dir=event.data.get("run_dir", ""))
            elif event.type is EventType.CANDIDATE_LOG and "token" in event.data:
                found.setdefault(cid, {})["token"] = event.data["token"]
        return {cid: info for cid, info in found.items() if "started" in info and cid not in final_ids}

    def unstarted(self, final_ids: set[str]) -> dict[str, dict]:
        """Candidates proposed (and perhaps approved) that never started and have no final record:
        what an engine that died was holding ahead for a free slot. ``{id: proposal event data}``."""
        proposed: dict[str, dict] = {}
        started: set[str] = set()
        for event in self.events():
            cid = event.data.get("id")
            if event.type is EventType.CANDIDATE_PROPOSED:
                proposed[cid] = event.data
            elif event.type is EventType.CANDIDATE_STARTED:
                started.add(cid)
        return {cid: data for cid, data in proposed.items() if cid not in started and cid not in final_ids}
