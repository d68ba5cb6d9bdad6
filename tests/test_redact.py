"""Secret redaction at the writer: a sentinel key never survives ``redact``."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.store.redact import (
    Redactor,
    collect_secrets,
    default_redactor,
    is_secret_name,
    redact,
    redact_data,
)

SENTINEL = "sk-afr-SENTINEL-0123456789abcdef"


def test_secret_names():
    for name in (
        "OPENAI_API_KEY",
        "MY_SERVICE_TOKEN",
        "DB_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "HF_TOKEN",
        "NVIDIA_API_KEY",
    ):
        assert is_secret_name(name), name
    for name in ("PATH", "AFR_RUN_TOKEN", "AWS_REGION", "LANG", "HOME"):
        assert not is_secret_name(name), name


def test_collect_keeps_long_secret_values_only():
    found = collect_secrets({"OPENAI_API_KEY": SENTINEL, "SHORT_TOKEN": "abc", "PATH": "/usr/bin:/bin:/sbin"})
    assert found == {SENTINEL: "OPENAI_API_KEY"}


def test_redact_masks_every_occurrence_and_the_longest_first():
    redactor = Redactor({SENTINEL: "OPENAI_API_KEY", SENTINEL[:20]: "PREFIX_TOKEN"})
    text = f"key={SENTINEL}; again {SENTINEL}\nprefix {SENTINEL[:20]}"
    masked = redactor(text)
    assert SENTINEL not in masked and SENTINEL[:20] not in masked
    assert masked.count("[REDACTED:OPENAI_API_KEY]") == 2
    assert "[REDACTED:PREFIX_TOKEN]" in masked
    assert redactor("nothing secret here") == "nothing secret here"


def test_redact_uses_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    default_redactor(refresh=True)
    try:
        record = {"error": f"401 Unauthorized for key {SENTINEL}", "args": [SENTINEL, 3], "score": 0.5}
        masked = redact_data(record)
        assert SENTINEL not in json.dumps(masked)
        assert masked["score"] == 0.5 and masked["args"][1] == 3
        assert redact(f"Bearer {SENTINEL}") == "Bearer [REDACTED:OPENAI_API_KEY]"
    finally:
        monkeypatch.delenv("OPENAI_API_KEY")
        default_redactor(refresh=True)


def test_redact_in_a_fresh_process_with_the_key_set():
    code = "import sys\nfrom engine.store.redact import redact\nsys.stdout.write(redact(sys.stdin.read()))\n"
    import os

    env = dict(os.environ, ANTHROPIC_API_KEY=SENTINEL)
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=f"traceback: auth failed ({SENTINEL})",
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "traceback: auth failed ([REDACTED:ANTHROPIC_API_KEY])"
