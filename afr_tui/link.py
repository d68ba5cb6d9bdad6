"""How the cockpit reaches a campaign: events by following its journal, commands by one call.

``AttachedLink`` talks to an engine in another process (``afr run``, ``afr attach``) over
the campaign's control socket; ``LocalLink`` wraps a ``Campaign`` running in this process
(tests, embedding). Both read events from ``journal.jsonl``, so the cockpit has one code
path for history and live events; the local one is woken by the campaign's own callback.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict
from pathlib import Path

import psutil

from engine.control.events import Command, Event, EventType
from engine.control.server import ControlError, JournalFollower, engine_status, parse_event, send_command

_LOG_MARK = b'"type": "candidate_log"'
_DEFERRED_MARKS = tuple(
    f'"type": "{kind.value}"'.encode()
    for kind in (
        EventType.CANDIDATE_VALIDATED,
        EventType.CANDIDATE_STARTED,
        EventType.CANDIDATE_ROUND,  # a finished candidate's curve comes from its record instead
        EventType.CANDIDATE_FINISHED,
    )
)
_ID = re.compile(rb'"id": "([^"]+)"')
POLL_SECONDS = 0.005  # a stat() per poll: cheap, and events reach the screen within a frame


class LinkError(RuntimeError):
    """A command that did not reach the engine or that it refused; one line."""


class Link:
    """The base: journal following; subclasses say how commands travel."""

    detachable = False  # whether quitting the cockpit can leave the campaign running on its own

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.follower = JournalFollower(self.directory / "journal.jsonl")
        self._wake = threading.Event()

    @property
    def root(self) -> Path:
        """The workspace repository: ``<root>/.afr/campaigns/<tag>``."""
        return self.directory.parents[2]

    def meta(self) -> dict:
        try:
            return json.loads((self.directory / "campaign.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"tag": self.directory.name}

    def history(self) -> list[Event]:
        """The events so far that the cockpit needs (the follower continues after them).

        A long campaign's journal is mostly events of finished candidates that their final
        review supersedes (validation, start, finish, log lines); those are parsed only for
        candidates still in flight, which keeps a 10,000-candidate attach well under a second.
        """
        parsed, deferred = [], []
        for line in self.follower.lines():
            if _LOG_MARK in line:
                continue
            if any(mark in line for mark in _DEFERRED_MARKS):
                deferred.append(line)
            else:
                event = parse_event(line)
                if event is not None:
                    parsed.append(event)
        proposed = {e.data.get("id") for e in parsed if e.type is EventType.CANDIDATE_PROPOSED}
        settled = {
            e.data.get("id")
            for e in parsed
            if e.type in (EventType.CANDIDATE_REVIEWED, EventType.CANDIDATE_REJECTED)
            or (e.type is EventType.DECISION and e.data.get("decision") == "reject")
        }
        in_flight = proposed - settled
        for line in deferred:
            found = _ID.search(line)
            if found and found.group(1).decode() in in_flight:
                event = parse_event(line)
                if event is not None:
                    parsed.append(event)
        return sorted(parsed, key=lambda event: event.seq)

    def wait(self, timeout: float) -> list[Event]:
        """New events, waiting up to ``timeout`` seconds for some."""
        waited = 0.0
        while True:
            if self.follower.changed():
                events = self.follower.read()
                if events:
                    return events
            if waited >= timeout:
                return []
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            waited += POLL_SECONDS

    def send(self, command: Command) -> None:
        raise NotImplementedError

    def engine_pid(self) -> int | None:
        return None

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        self._wake.set()


class AttachedLink(Link):
    detachable = True

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self._pid: int | None = None

    def send(self, command: Command) -> None:
        try:
            send_command(self.directory, command)
        except ControlError as error:
            raise LinkError(str(error)) from None

    def engine_pid(self) -> int | None:
        if self._pid is None:
            try:
                self._pid = int(engine_status(self.directory).get("pid") or 0) or None
            except ControlError:
                return None
        return self._pid

    def alive(self) -> bool:
        pid = self.engine_pid()
        if pid is None:
            return False
        try:  # `afr run` is the engine's parent, so a dead engine lingers as a zombie until it exits
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True


class LocalLink(Link):
    """A campaign object in this process; commands are direct calls."""

    def __init__(self, campaign) -> None:
        super().__init__(campaign.dir)
        self.campaign = campaign
        campaign.subscribe(lambda _event: self._wake.set())

    def meta(self) -> dict:
        meta = super().meta()
        meta.setdefault("tag", self.campaign.tag)
        meta.setdefault("profile", self.campaign.profile.name)
        meta.setdefault("options", asdict(self.campaign.options))
        return meta

    def send(self, command: Command) -> None:
        try:
            self.campaign.command(command)
        except ValueError as error:
            raise LinkError(str(error)) from None

    def engine_pid(self) -> int | None:
        return os.getpid()
