"""Secrets out of anything the agent reads back (job logs, records, diffs).

A minimal, local ``redact()``: the project's shared redaction (``engine/store/redact.py``,
being written for issue 12) takes over automatically once it exists, so there is one rule set;
until then these patterns cover provider keys, bearer tokens, ``NAME=secret`` assignments and
the values of the secret-looking variables in this process's environment.
"""

from __future__ import annotations

import os
import re

MASK = "[redacted]"
_SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),  # OpenAI-style and Anthropic (sk-ant-...) keys
    re.compile(r"\b(?:ghp|gho|ghs|github_pat|hf|xox[abprs]|glpat)_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._\-]{8,}"),
    re.compile(
        r"(?i)\b([A-Z0-9_]*(?:API_?KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*)\s*[=:]\s*['\"]?[^\s'\",]{6,}"
    ),
)


def _env_secrets() -> list[str]:
    return sorted(
        (v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8), key=len, reverse=True
    )


def _local_redact(text: str) -> str:
    for value in _env_secrets():
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: f"{m.group(1)}={MASK}", text)
        else:
            text = pattern.sub(MASK, text)
    return text


def redact(text: str) -> str:
    """``text`` with every secret we can recognise replaced by ``[redacted]``."""
    try:  # the shared rule set, when issue 12's module is present
        from engine.store.redact import redact as shared  # type: ignore[import-not-found]
    except ImportError:
        return _local_redact(text)
    return _local_redact(shared(text))
