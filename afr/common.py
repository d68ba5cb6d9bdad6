"""What every ``afr`` subcommand shares: the one-line usage error, argument types, the workspace, GPUs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.store.bundle import resolve_root


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, except where there is none to show (None, off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # argparse would say "invalid positive_int value"
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}") from None
    if value != value or value <= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def workspace_root(path: Path | None) -> Path:
    """A campaign needs a git workspace: --workspace, or the nearest one from the current folder upward."""
    root = resolve_root(path)
    if not (root / ".git").exists():
        raise UsageError(f"{root} is not a git repository; make a workspace with `afr init DIR`")
    return root


def gpu_ids() -> list[str]:
    """One entry per visible NVIDIA GPU (NVML), for pinning one candidate per GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no GPU: candidates run on the CPU
        return []


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
