"""What a campaign is started with, where it lives, and how it fails to start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

STATES = (
    "starting",
    "running",
    "paused",
    "awaiting_approval",
    "literature",
    "stopping",
    "stopped",
    "finished",
)


@dataclass
class CampaignOptions:
    max_candidates: int = 30
    max_hours: float | None = None
    parallel: int = 1
    approval: str = "auto"  # auto or manual
    env: str = "sim"
    deployment: dict | None = None  # env "prod": engine.run.deployment.Deployment as a dict (startup kit, user, sites)
    smoke: bool = False
    seed: int = 0
    max_cost: float | None = None  # USD per campaign, for LLM proposers
    proposer: str = "scripted"  # scripted, llm or command
    model: str | None = None  # any LiteLLM model string, for the llm proposer
    api_base: str | None = None
    fallback_model: str | None = None
    tool_calling: bool | None = None  # None: LiteLLM's model capabilities decide; False: JSON-in-text
    max_steps: int = 16  # model calls per candidate (the agent's tool steps)
    max_reply_tokens: int = 2048  # completion tokens per model call
    match: str | None = None  # a same-budget control of this campaign tag (afr run --match)
    agent_cmd: str | None = None  # the external coding agent's command line (proposer "command")
    agent_timeout: float = 1800.0  # seconds per agent run
    agent_max_output: int = 1_000_000  # bytes of the agent's output kept in its transcript
    agent_env: list[str] = field(default_factory=list)  # variables passed through to the agent
    confirm: bool = True  # confirm a would-be keep on [review] confirm_seeds (afr run --no-confirm)
    executor: str = "local"  # where jobs run: local or ray (engine/run/executors.py)
    ray_address: str | None = None  # the Ray cluster (--ray-address); None: auto

    def deployment_kwargs(self) -> dict:
        """What a runner needs besides ``env`` to reach a real deployment (nothing for sim and poc)."""
        return {"deployment": self.deployment} if self.env == "prod" else {}


class CampaignError(RuntimeError):
    """A campaign that cannot start or resume; the message is one line."""


def campaign_dir(root: Path, tag: str) -> Path:
    return Path(root) / ".afr" / "campaigns" / tag
