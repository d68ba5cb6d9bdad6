"""Finding and mending ledgers that a crash cut short.

A crash mid-write can leave the last line of ``results.tsv`` (or ``candidates.jsonl``) without
its newline. Readers skip such a line, so every read also asks ``torn_files`` and reports it;
``repair_ledger`` (run by ``afr resume`` before anything appends) cuts the torn line and puts
back every row that ``candidates.jsonl`` holds a final record for but ``results.tsv`` lacks.
The campaign writes a candidate's record before its row, so the record is always there.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.store.ledger import LITERATURE_BUDGET, Ledger, ResultRow, locked

ROW_STATUS = {"keep": "keep", "discard": "discard", "crash": "crash", "aborted": "discard"}


def torn_files(ledger: Ledger) -> list[Path]:
    """The ledger files whose last line has no newline (a write a crash cut short)."""
    torn = []
    for path in (ledger.results_path, ledger.candidates_path):
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    torn.append(path)
    return torn


def ledger_warnings(ledger: Ledger, tag: str) -> list[str]:
    """One line per torn file, saying what repairs it."""
    return [
        f"campaign {tag}: {path} ends in a cut line (a crash mid-write); "
        f"`afr resume {tag}` rebuilds it from candidates.jsonl"
        for path in torn_files(ledger)
    ]


def row_from_record(record: dict, budget: str) -> ResultRow:
    """The ``results.tsv`` row a final candidate record stands for."""
    status = ROW_STATUS[record["status"]]
    score = record.get("score")
    if record["status"] == "crash":
        score = 0.0
    elif record["status"] == "aborted":
        score = None
    description = record.get("description", "")
    if record["status"] == "aborted" and "aborted" not in description:
        description += " [aborted by the human]"
    return ResultRow(
        (record.get("commit") or record.get("parent") or "")[:7],
        score,
        float(record.get("runtime_seconds") or 0.0),
        record.get("budget") or budget,
        status,
        record.get("target", ""),
        description,
        f"runs/{record['id']}",
    )


def _cut_torn(path: Path) -> str:
    """Cut a torn last line; return what was cut."""
    with locked(path, os.O_RDWR) as fd:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if not tail or tail.endswith(b"\n"):
            return ""
        cut = tail.rfind(b"\n")
        os.ftruncate(fd, size - len(tail) + cut + 1 if cut >= 0 else 0)
        os.fsync(fd)
        return tail[cut + 1 :].decode("utf-8", errors="replace")


def repair_ledger(ledger: Ledger) -> list[str]:
    """Cut torn lines and restore missing rows; one line per thing done (empty: nothing to do)."""
    done = []
    for path in torn_files(ledger):
        fragment = _cut_torn(path)
        done.append(f"{path.name}: cut a torn last line ({len(fragment)} characters: {fragment[:60]!r})")
    rows = ledger.rows()
    present = {row.artifacts for row in rows}
    budget = next((r.budget for r in reversed(rows) if r.status != "literature"), "")
    for record in ledger.latest_candidates().values():
        if record.get("status") in ROW_STATUS and f"runs/{record['id']}" not in present:
            ledger.append_row(row_from_record(record, budget))
            done.append(f"results.tsv: restored the row of {record['id']} from candidates.jsonl")
    sheets = sorted((ledger.directory / "literature").glob("[0-9][0-9][0-9].md"))
    for sheet in sheets:
        artifacts = f"literature/{sheet.name}"
        if artifacts not in present:
            ledger.append_row(
                ResultRow(
                    "", None, 0.0, LITERATURE_BUDGET, "literature", "literature",
                    f"literature review (row restored after a crash; see {artifacts})", artifacts,
                )
            )
            done.append(f"results.tsv: restored the row of {artifacts}")
    return done
