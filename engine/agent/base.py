"""The proposer interface: what a proposer sees and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.profile import Profile, Scalar
from engine.store.ledger import ResultRow


@dataclass
class CandidateSpec:
    """One proposed candidate: args overrides of the baseline, and optional file edits."""

    description: str
    target: str  # baseline, scalar, code, architecture or literature
    args: dict[str, Scalar] = field(default_factory=dict)
    edits: dict[str, str] = field(default_factory=dict)  # workspace-relative path -> new text
    source_refs: list[str] = field(default_factory=list)
    telemetry: dict = field(default_factory=dict)  # tokens, cost, latency, tool calls (LLM proposers)
    proposer_error: str = ""  # set when the proposer failed: the candidate is refused with this reason
    directive: str = ""  # a selected literature proposal that the agent still has to implement
    # Bundled code mechanisms it adds (engine/agent/mechanisms.py), for re-telling and mechanism tables.
    mechanisms: list[str] = field(default_factory=list)


@dataclass
class ProposalContext:
    profile: Profile
    rows: list[ResultRow]  # results.tsv so far
    records: list[dict]  # the final candidates.jsonl record per candidate
    best_args: dict[str, Scalar]  # args of the best kept candidate ({} = baseline)
    proposed: int  # candidates proposed so far, rejected ones included
    seed: int
    notes: list[str] = field(default_factory=list)  # the human's notes to the agent
    root: Path | None = None  # the campaign's workspace (agents read files at ``parent``)
    parent: str | None = None  # the commit the candidate will branch from
    tag: str | None = None
    hashes: dict[str, str] = field(default_factory=dict)  # protected files at the campaign start
    directive: str = ""  # what this candidate must implement (a selected literature proposal)
    trigger: str = ""  # why a literature cycle started (watchdog, the human, repeated crashes)
    # Approved candidates not yet reviewed (running, or waiting for a slot): {"id", "args", "description"}.
    in_flight: list[dict] = field(default_factory=list)
    in_preparation: int = 0  # other proposals asked and not yet back (proposers that work concurrently)

    @property
    def baseline_due(self) -> bool:
        """Nothing recorded, running or being proposed: the next candidate is the baseline. With
        several slots the proposer is asked again while the baseline runs, and must not repeat it."""
        return not self.records and not self.in_flight and not self.in_preparation


@dataclass
class LiteratureResult:
    worksheet: str  # markdown written to literature/NNN.md
    proposals: list[CandidateSpec]
    summary: str  # one line for the ledger row
    telemetry: dict = field(default_factory=dict)  # what the cycle cost (LLM proposers)


class ProposerError(RuntimeError):
    """The proposer could not produce a candidate (provider down, no submission); one line.

    ``telemetry`` keeps what the attempt cost (tokens, calls), so it is still ledgered.
    """

    def __init__(self, message: str, telemetry: dict | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.telemetry = telemetry or {}
        self.kind = kind  # a provider error's kind (engine.agent.provider.ErrorKind), '' otherwise


class Proposer(Protocol):
    name: str

    def propose(self, context: ProposalContext) -> CandidateSpec: ...

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult: ...
