"""Proposals in flight: the campaign thread asks, a worker thread waits on the proposer.

An LLM proposal takes tens of seconds. Made on the campaign thread, it would hold up the
review of candidates that finish meanwhile; made one at a time, it cannot keep several slots
fed when a candidate runs for less than ``slots x proposal time``. So each proposal runs on
its own thread, from the campaign's state when it was asked, and a proposer whose calls share
no state (``concurrent_proposals`` > 1, the LLM proposer) gets several at once. What a
proposal leads to (worktree, validation, commit, ledger) stays on the campaign thread, in the
order the proposals come back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.agent.base import CandidateSpec, ProposerError
from engine.campaign.slots import drain
from engine.control.events import Command, CommandType

if TYPE_CHECKING:
    from engine.campaign.loop import Campaign

MAX_PROPOSER_FAILURES = 3


@dataclass
class Proposal:
    """What one proposer call gave back: a spec, or the proposer's error."""

    spec: CandidateSpec | None
    error: ProposerError | None
    parent: str  # the commit the candidate branches from (the best known when it was asked)
    seconds: float  # the proposer's own time


def concurrency(proposer: object, width: int) -> int:
    """Proposer calls allowed at once: one, unless the proposer declares its calls independent
    (then at most one per slot, so it never works further ahead than the slots can run)."""
    declared = int(getattr(proposer, "concurrent_proposals", 1) or 1)
    return max(1, min(declared, width))


class Proposals:
    def __init__(self, limit: int, wake: threading.Event | None = None) -> None:
        self.limit = max(1, limit)
        self._wake = wake  # set when a proposal comes back, so a waiting campaign looks at once
        self._done: queue.Queue[Proposal] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Calls asked and not yet taken back by ``done``."""
        with self._lock:
            return self._pending

    @property
    def full(self) -> bool:
        return self.pending >= self.limit

    def ask(self, make: Callable[[], CandidateSpec], parent: str) -> None:
        """Start ``make`` (a proposer call, or a spec already decided) on its own thread."""
        with self._lock:
            self._pending += 1

        def work() -> None:
            started = time.time()
            spec, error = None, None
            try:
                spec = make()
            except ProposerError as failure:
                error = failure
            except Exception as failure:  # a broken proposer must not take the campaign down
                error = ProposerError(f"the proposer failed: {str(failure).splitlines()[0][:200]}")
            self._done.put(Proposal(spec, error, parent, time.time() - started))
            if self._wake is not None:
                self._wake.set()

        threading.Thread(target=work, name="afr-proposal", daemon=True).start()

    def done(self, timeout: float = 0.0) -> list[Proposal]:
        """The proposals that came back, in the order they did, waiting up to ``timeout`` for one."""
        back = drain(self._done, timeout)
        with self._lock:
            self._pending -= len(back)
        return back


def spec_of(campaign: Campaign, proposal: Proposal) -> CandidateSpec:
    """The proposal's spec; a proposer failure becomes a spec the guard refuses, with the reason.
    A lasting failure (no auth, no such model, nothing listening) pauses the campaign at once,
    others after MAX_PROPOSER_FAILURES in a row."""
    if proposal.error is None and proposal.spec is not None:
        campaign.proposer_failures = 0
        return proposal.spec
    error = proposal.error or ProposerError("the proposer returned nothing")
    campaign.proposer_failures += 1
    failures = campaign.proposer_failures
    lasting = error.kind in ("auth", "not found", "connection")  # waiting will not mend these
    if lasting or failures >= MAX_PROPOSER_FAILURES:
        times = f"{failures} time{'s' if failures > 1 else ''}"
        campaign.command(Command(CommandType.PAUSE, note=f"the proposer failed {times}: {error}"))
    return CandidateSpec(
        f"(no proposal: {error})", "scalar", {}, proposer_error=str(error), telemetry=error.telemetry
    )
