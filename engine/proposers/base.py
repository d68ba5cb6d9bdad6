"""The proposer interface: what a proposer sees and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from engine.ledger import ResultRow
from engine.profile import Profile, Scalar


@dataclass
class CandidateSpec:
    """One proposed candidate: args overrides of the baseline, and optional file edits."""

    description: str
    target: str  # baseline, scalar, code, architecture or literature
    args: dict[str, Scalar] = field(default_factory=dict)
    edits: dict[str, str] = field(default_factory=dict)  # workspace-relative path -> new text
    source_refs: list[str] = field(default_factory=list)


@dataclass
class ProposalContext:
    profile: Profile
    rows: list[ResultRow]  # results.tsv so far
    records: list[dict]  # the final candidates.jsonl record per candidate
    best_args: dict[str, Scalar]  # args of the best kept candidate ({} = baseline)
    proposed: int  # candidates proposed so far, rejected ones included
    seed: int
    notes: list[str] = field(default_factory=list)  # the human's notes to the agent


@dataclass
class LiteratureResult:
    worksheet: str  # markdown written to literature/NNN.md
    proposals: list[CandidateSpec]
    summary: str  # one line for the ledger row


class Proposer(Protocol):
    name: str

    def propose(self, context: ProposalContext) -> CandidateSpec: ...

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult: ...
