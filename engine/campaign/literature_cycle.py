"""When a campaign turns to the literature, running one review, and the queue of its winners.

The trigger is the plateau watchdog, the human's request, or crashes that share a cause; the
review itself is the proposer's. Its selected proposals are queued: args-only winners run as
they are, code-changing ones go back to the proposer with the card as its brief.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from typing import TYPE_CHECKING

from engine.agent.base import CandidateSpec
from engine.agent.literature import CRASH_TRIGGER, shared_crash_cause, watchdog
from engine.control.events import EventType
from engine.store.ledger import LITERATURE_BUDGET, ResultRow
from engine.store.redact import redact

if TYPE_CHECKING:
    from engine.campaign.loop import Campaign


class LiteratureCycle:
    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.requested = False  # the human pressed `l` (FORCE_LITERATURE)
        self.queue: list[CandidateSpec] = []  # selected proposals not yet proposed
        self._last_finished: float | None = None  # when the last review ended

    def trigger(self, rows: list[ResultRow]) -> str:
        """Why a literature cycle should start now, or ''."""
        campaign = self.campaign
        profile = campaign.profile
        if not any(r.status != "literature" for r in rows):
            return ""  # the baseline always comes first; a forced review waits for it
        if self.requested:
            return "forced by the human"
        state = watchdog(
            rows, profile.watchdog.max_scored_since_reset, profile.watchdog.min_delta, profile.maximize
        )
        if state.recommend_literature:
            return "plateau: " + state.reason
        if self._last_finished is None:
            finished = [e.ts for e in campaign.journal.events() if e.type is EventType.LITERATURE_FINISHED]
            self._last_finished = max(finished, default=0.0)
        crashes = [
            r.get("error", "")
            for r in campaign.final_records().values()
            if r.get("status") == "crash"
            and (r.get("timings") or {}).get("finished", 0) > self._last_finished
        ]
        cause = shared_crash_cause(crashes)
        return f"{CRASH_TRIGGER} or more crashes share a cause: {cause}" if cause else ""

    def maybe_run(self) -> None:
        campaign = self.campaign
        rows = campaign.ledger.rows()
        trigger = self.trigger(rows)
        if not trigger:
            return
        self.requested = False
        campaign.set_state("literature")
        started = time.time()
        campaign.emit(EventType.LITERATURE_STARTED, reason=trigger)
        context = replace(campaign.context(), trigger=trigger)
        result = campaign.proposer.literature(context, max(1, campaign.options.parallel))
        number = len([r for r in rows if r.status == "literature"]) + 1
        sheet = campaign.dir / "literature" / f"{number:03d}.md"
        sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.write_text(redact(result.worksheet) + "\n", encoding="utf-8")
        self.queue = list(result.proposals)
        campaign.ledger.append_row(
            ResultRow(
                campaign.repo.head()[:7],
                None,
                time.time() - started,
                LITERATURE_BUDGET,
                "literature",
                "literature",
                result.summary,
                f"literature/{number:03d}.md",
            )
        )
        if result.telemetry:
            campaign.emit(EventType.TELEMETRY, phase="literature", **result.telemetry)
        self._last_finished = time.time()
        campaign.emit(
            EventType.LITERATURE_FINISHED,
            worksheet=str(sheet.relative_to(campaign.dir)),
            selected=[s.description for s in result.proposals],
            specs=[asdict(s) for s in result.proposals],  # a resume implements what is left
            trigger=trigger,
        )

    def restore(self) -> None:
        """On resume: the last review's selected proposals that no candidate has taken up yet."""
        events = self.campaign.journal.events()
        reviews = [i for i, e in enumerate(events) if e.type is EventType.LITERATURE_FINISHED]
        if not reviews:
            self.queue = []
            return
        specs = [CandidateSpec(**spec) for spec in events[reviews[-1]].data.get("specs", [])]
        taken = sum(1 for e in events[reviews[-1] + 1 :] if e.type is EventType.CANDIDATE_PROPOSED)
        self.queue = specs[taken:]

    def next_call(self) -> Callable[[], CandidateSpec]:
        """The next proposal, decided now on the campaign thread and made later on a proposal's
        thread: the next queued winner (implemented by the proposer when it changes code), else a
        fresh proposal from the campaign's state as it is now."""
        proposer, context = self.campaign.proposer, self.campaign.context()
        if not self.queue:
            return partial(proposer.propose, context)
        selected = self.queue.pop(0)
        if not selected.directive:
            return lambda: selected

        def implement() -> CandidateSpec:
            # A code-changing proposal: the agent implements it, and the result keeps its citation.
            spec = proposer.propose(replace(context, directive=selected.directive))
            cites = " ".join(
                f"[src: {ref}]" for ref in selected.source_refs if f"[src: {ref}]" not in spec.description
            )
            spec.description = f"{spec.description} {cites}".strip()
            spec.source_refs = list(dict.fromkeys([*spec.source_refs, *selected.source_refs]))
            spec.target = "literature"
            return spec

        return implement
