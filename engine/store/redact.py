"""Secret redaction for every text afr writes (ledgers, journal, logs, prompts, reports, commits).

The values of secret-looking environment variables are collected once and replaced by
``[REDACTED:NAME]`` wherever they appear. Cheap enough to call on every write: a handful of
``str.replace`` calls, longest value first so a key that contains another is not half-masked.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping

# Variable names whose values are secrets. Patterns cover the usual conventions; the exact
# names are provider variables that do not follow them.
SECRET_NAME_PATTERNS = (
    "*_API_KEY",
    "*_APIKEY",
    "*_TOKEN",
    "*_SECRET",
    "*_SECRET_KEY",
    "*_ACCESS_KEY",
    "*_PASSWORD",
    "AWS_*",
    "AZURE_*_KEY",
)
SECRET_NAMES = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "GITHUB_TOKEN",
        "NVIDIA_API_KEY",
        "NGC_API_KEY",
        "OPENROUTER_API_KEY",
        "GROQ_API_KEY",
        "MISTRAL_API_KEY",
        "COHERE_API_KEY",
        "TOGETHER_API_KEY",
        "DEEPSEEK_API_KEY",
        "XAI_API_KEY",
        "AZURE_API_KEY",
        "LITELLM_MASTER_KEY",
        "WANDB_API_KEY",
    }
)
# Names that match a pattern but whose values are not secrets (a run mark, a region).
NOT_SECRET = frozenset({"AFR_RUN_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"})
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would redact ordinary text


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    if upper in NOT_SECRET:
        return False
    return upper in SECRET_NAMES or any(fnmatch.fnmatchcase(upper, p) for p in SECRET_NAME_PATTERNS)


def collect_secrets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secret value -> the name of the variable that holds it."""
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        value = value.strip()
        if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH:
            found.setdefault(value, name)
    return found


class Redactor:
    """Masks a fixed set of secret values; build one per process (``default_redactor``)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = sorted(secrets.items(), key=lambda item: -len(item[0]))

    def __call__(self, text: str) -> str:
        for value, name in self._secrets:
            if value in text:
                text = text.replace(value, f"[REDACTED:{name}]")
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


_default: Redactor | None = None


def default_redactor(refresh: bool = False) -> Redactor:
    """The process's redactor, built from ``os.environ`` on first use (``refresh`` rebuilds it)."""
    global _default
    if _default is None or refresh:
        _default = Redactor(collect_secrets())
    return _default


def redact(text: str) -> str:
    """``text`` with every secret of the environment replaced by ``[REDACTED:NAME]``."""
    return default_redactor()(text)


def redact_data(value):
    """``redact`` applied to every string inside JSON-like data (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(key): redact_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(item) for item in value)
    return value
