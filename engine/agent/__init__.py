"""Where candidates come from: ``scripted`` (offline scalar HPO), ``tpe`` (Optuna), ``llm`` (a LiteLLM
agent) and ``command`` (an external coding agent run in the candidate's worktree)."""

from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext, Proposer, ProposerError

__all__ = [
    "CandidateSpec",
    "LiteratureResult",
    "ProposalContext",
    "Proposer",
    "ProposerError",
    "build_proposer",
]


def build_proposer(options) -> Proposer:
    """The proposer a campaign's options name (``CampaignOptions``)."""
    if options.proposer == "scripted":
        from engine.agent.scripted import ScriptedProposer

        return ScriptedProposer()
    if options.proposer == "tpe":
        from engine.agent.tpe import TPEProposer

        return TPEProposer()
    if options.proposer == "llm":
        if not options.model:
            raise ValueError("the llm proposer needs --model (any LiteLLM model string)")
        from engine.agent.llm import LLMProposer

        return LLMProposer(
            options.model,
            api_base=options.api_base,
            fallback_model=options.fallback_model,
            tool_calling=options.tool_calling,
            max_steps=options.max_steps,
            max_completion_tokens=options.max_reply_tokens,
        )
    if options.proposer == "command":
        from engine.agent.command import CommandProposer

        return CommandProposer(
            options.agent_cmd or "",
            timeout=options.agent_timeout,
            max_output=options.agent_max_output,
            env=options.agent_env,
        )
    raise ValueError(f"unknown proposer {options.proposer!r}; choose scripted, tpe, llm or command")
