"""N run slots: each runs one approved candidate at a time and takes the next one the moment it frees.

The campaign thread proposes, validates and approves candidates and puts them in the ready
queue; it also reviews what the slots hand back. Slots only run: they never touch the ledger
or git, so every durable write stays on one thread.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from engine.run.runner import CRASH_SCORE, RunResult

if TYPE_CHECKING:
    from engine.campaign.candidate import Candidate

Execute = Callable[["Candidate", int], RunResult]
T = TypeVar("T")


def drain(source: queue.Queue[T], timeout: float = 0.0) -> list[T]:
    """Everything in ``source``, in order, waiting up to ``timeout`` for the first item."""
    items = []
    try:
        items.append(source.get(timeout=timeout) if timeout > 0 else source.get_nowait())
        while True:
            items.append(source.get_nowait())
    except queue.Empty:
        pass
    return items


class Slots:
    def __init__(
        self,
        width: int,
        execute: Execute,
        may_start: Callable[[], bool],
        wake: threading.Event | None = None,
    ) -> None:
        self.width = max(1, width)
        self._wake = wake  # set when a candidate finishes, so a waiting campaign reviews at once
        self._execute = execute
        self._may_start = may_start  # False while the campaign is paused or stopping
        self._ready: deque[Candidate] = deque()
        self._running: dict[int, Candidate] = {}
        self._finished: queue.Queue[tuple[Candidate, RunResult]] = queue.Queue()
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, args=(slot,), name=f"afr-slot-{slot}", daemon=True)
            for slot in range(self.width)
        ]
        for thread in self._threads:
            thread.start()

    # -- the campaign thread's side ------------------------------------------------------------

    def submit(self, candidate: Candidate, first: bool = False) -> None:
        """Queue work for the next free slot; ``first`` puts it ahead of the queue (confirmations)."""
        with self._cond:
            if first:
                self._ready.appendleft(candidate)
            else:
                self._ready.append(candidate)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        """Candidates approved but not yet reviewed: waiting, running, or finished and unreviewed."""
        with self._cond:
            return len(self._ready) + len(self._running) + self._finished.qsize()

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def finished(self, timeout: float = 0.0) -> list[tuple[Candidate, RunResult]]:
        """What the slots have finished, waiting up to ``timeout`` for the first one."""
        return drain(self._finished, timeout)

    def take_unstarted(self) -> list[Candidate]:
        """Empty the ready queue (the campaign is stopping): these candidates never ran."""
        with self._cond:
            unstarted = list(self._ready)
            self._ready.clear()
            return unstarted

    def wake(self) -> None:
        """Let waiting slots look again (after a resume)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- a slot's side ----------------------------------------------------------------------------

    def _work(self, slot: int) -> None:
        while True:
            with self._cond:
                while not self._closed and not (self._ready and self._may_start()):
                    self._cond.wait(timeout=0.5)
                if self._closed:
                    return
                candidate = self._ready.popleft()
                self._running[slot] = candidate
            try:
                result = self._execute(candidate, slot)
            except Exception as error:  # a broken runner must not take the campaign down
                result = RunResult(
                    "crash", CRASH_SCORE, {}, 0.0, "", None, None, [], f"runner failed: {error}"
                )
            with self._cond:
                self._finished.put((candidate, result))
                self._running.pop(slot, None)
                self._cond.notify_all()
            if self._wake is not None:
                self._wake.set()
