"""Where candidates come from: ``scripted`` (offline scalar HPO) and, later, ``llm``."""

from engine.proposers.base import CandidateSpec, LiteratureResult, ProposalContext, Proposer

__all__ = ["CandidateSpec", "LiteratureResult", "ProposalContext", "Proposer"]
