"""An external agent's writes to the campaign's ledgers: detected and undone, while the engine
itself may be appending to the same files (candidates finish while the next one is proposed).

Until the run sandbox makes the campaign directory read-only to the agent, this is the guard:
``campaign.json`` must not change at all; ``results.tsv``, ``candidates.jsonl`` and
``evidence.tsv`` may only grow by well-formed lines for candidates not recorded before. Anything
else is reported, and the file is put back as it was plus the well-formed new lines. Known
limit: a human override that rewrites ``results.tsv`` during the agent's run is undone too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

EXACT = ("campaign.json",)


def _fields(count: int) -> Callable[[str], str | None]:
    """A TSV line's identity (its last or first fields), or None when it is not a well-formed row."""

    def key(line: str) -> str | None:
        fields = line.rstrip("\n").split("\t")
        if len(fields) != count:
            return None
        return fields[-1] if count == 8 else "\t".join(fields[:4])  # artifacts; (candidate, role, subset, seed)

    return key


def _record_id(line: str) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return str(record["id"]) if isinstance(record, dict) and "id" in record else None


APPEND_ONLY: dict[str, Callable[[str], str | None]] = {
    "results.tsv": _fields(8),
    "candidates.jsonl": _record_id,
    "evidence.tsv": _fields(9),
}


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        name: (directory / name).read_bytes() if (directory / name).exists() else None
        for name in (*EXACT, *APPEND_ONLY)
    }


def repair(directory: Path, before: dict[str, bytes | None]) -> list[str]:
    """Undo the agent's changes to the ledgers; the names of the files it changed."""
    changed = []
    for name in EXACT:
        path = directory / name
        now = path.read_bytes() if path.exists() else None
        if now != before[name]:
            changed.append(name)
            if before[name] is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(before[name])
    for name, key in APPEND_ONLY.items():
        path = directory / name
        old = before[name] or b""
        now = path.read_bytes() if path.exists() else b""
        if now == old:
            continue
        old_lines = old.decode("utf-8", "replace").splitlines(keepends=True)
        known = {key(line) for line in old_lines} - {None}
        if now.startswith(old):
            added = now[len(old) :].decode("utf-8", "replace").splitlines(keepends=True)
        else:  # earlier lines were edited: every line not there before is a candidate append
            added = [line for line in now.decode("utf-8", "replace").splitlines(keepends=True) if line not in old_lines]
        good = [line for line in added if line.endswith("\n") and key(line) is not None and key(line) not in known]
        if now.startswith(old) and len(good) == len(added):
            continue  # only the engine's own appends
        changed.append(name)
        path.write_bytes(old + "".join(good).encode("utf-8"))
    return changed
