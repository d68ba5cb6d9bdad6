"""Counts in words every view shares: "1 candidate", "2 candidates", "1 crash", "3 crashes"."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    if count == 1:
        return noun
    return noun + ("es" if noun.endswith(("sh", "ch", "s", "x")) else "s")


def counted(count: int, noun: str) -> str:
    return f"{count} {plural(count, noun)}"
