"""Canonical forms of a candidate's argument overrides: recognising repeats and describing changes."""

from __future__ import annotations

import json

from engine.profile import Profile, Scalar


def config_key(profile: Profile, args: dict[str, Scalar]) -> str:
    """A canonical form of the full configuration, to recognise repeats."""
    full = {**profile.baseline, **args}
    return json.dumps({k: full[k] for k in sorted(full)}, sort_keys=True, default=str)


def effective_args(profile: Profile, args: dict[str, Scalar]) -> dict[str, Scalar]:
    """Only the args that differ from the baseline."""
    return {k: v for k, v in args.items() if profile.baseline.get(k) != v}


def describe_args(args: dict[str, Scalar]) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in sorted(args.items())) or "baseline args"


def fmt_value(value: Scalar) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
