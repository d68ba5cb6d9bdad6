"""The real ``afr`` command as a subprocess, as the tests that drive it end to end call it."""

from __future__ import annotations

import subprocess
import sys


def afr(*args: str, cwd, timeout: float = 900) -> subprocess.CompletedProcess:
    """``afr ARGS`` in ``cwd``, output captured, no standard input (as in CI)."""
    return subprocess.run(
        [sys.executable, "-m", "afr.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
