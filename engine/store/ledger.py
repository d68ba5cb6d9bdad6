"""The campaign ledger: ``results.tsv`` (the reference schema, exactly) and ``candidates.jsonl``.

``results.tsv`` keeps the published Auto-FL-Research header so the reference's own scripts
(progress plot, plateau watchdog, batch finaliser) read it unchanged. Everything richer
about a candidate goes to ``candidates.jsonl``, one JSON object per candidate.

Appends take an exclusive ``flock`` and write the whole line in one ``write`` on an
``O_APPEND`` descriptor, then ``fsync``: two processes never interleave, and a crash can
at worst leave a last line without its newline, which readers skip and report, and
``repair_ledger`` rebuilds from ``candidates.jsonl`` before anything appends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.store.redact import redact

RESULTS_HEADER = (
    "commit",
    "score",
    "runtime_seconds",
    "budget",
    "status",
    "target",
    "description",
    "artifacts",
)
STATUSES = ("candidate", "keep", "discard", "crash", "literature")
LITERATURE_BUDGET = "literature_loop"


class LedgerError(ValueError):
    """A ledger file that cannot be read; the message is one line naming file and line."""


@dataclass(frozen=True)
class ResultRow:
    commit: str
    score: float | None
    runtime_seconds: float
    budget: str
    status: str
    target: str
    description: str
    artifacts: str = ""

    def to_line(self) -> str:
        score = "" if self.score is None else f"{self.score:.6f}"
        fields = (
            self.commit,
            score,
            f"{self.runtime_seconds:.1f}",
            self.budget,
            self.status,
            self.target,
            self.description,
            self.artifacts,
        )
        return "\t".join(_clean(str(field)) for field in fields) + "\n"


def _clean(text: str) -> str:
    """Tabs and newlines would break the TSV; collapse them to spaces."""
    return " ".join(text.replace("\t", " ").splitlines()).strip()


@contextlib.contextmanager
def locked(path: Path, flags: int = os.O_RDWR | os.O_APPEND | os.O_CREAT) -> Iterator[int]:
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def locked_append(path: Path, line: str) -> None:
    if not line.endswith("\n"):
        raise ValueError("a ledger line must end with a newline")
    data = redact(line).encode("utf-8")  # a provider key never reaches a ledger or the journal
    with locked(path) as fd:
        _end_torn_line(fd)
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)


def _end_torn_line(fd: int) -> None:
    """If a crash left a last line without its newline, cut it before appending."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    if os.pread(fd, 1, size - 1) == b"\n":
        return
    tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    cut = tail.rfind(b"\n")
    os.ftruncate(fd, size - len(tail) + cut + 1 if cut >= 0 else 0)


def _complete_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    return lines[:-1]  # the last piece is "" after a final newline, or a torn line to ignore


def _parse_float(text: str, what: str, where: str, blank_ok: bool) -> float | None:
    if text == "" and blank_ok:
        return None
    try:
        value = float(text)
    except ValueError:
        raise LedgerError(f"{where}: {what} {text!r} is not a number") from None
    if math.isnan(value):
        raise LedgerError(f"{where}: {what} is NaN")
    return value


class Ledger:
    """The two ledger files of one campaign directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.results_path = self.directory / "results.tsv"
        self.candidates_path = self.directory / "candidates.jsonl"

    def ensure(self) -> None:
        """Create ``results.tsv`` with the header if it does not exist yet."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with locked(self.results_path) as fd:
            if os.fstat(fd).st_size == 0:
                os.write(fd, ("\t".join(RESULTS_HEADER) + "\n").encode())
                os.fsync(fd)

    # -- results.tsv ------------------------------------------------------------------------

    def append_row(self, row: ResultRow) -> None:
        if row.status not in STATUSES:
            raise ValueError(f"status {row.status!r} is not one of {STATUSES}")
        self.ensure()
        if self.results_path in torn_files(self):  # mend it from candidates.jsonl, never just cut it
            self.repair()
            if row.artifacts.startswith("runs/") and any(r.artifacts == row.artifacts for r in self.rows()):
                return  # the repair restored this very row from its record
        locked_append(self.results_path, row.to_line())

    def rows(self) -> list[ResultRow]:
        lines = _complete_lines(self.results_path)
        if not lines:
            return []
        name = str(self.results_path)  # the path names the campaign too
        if tuple(lines[0].split("\t")) != RESULTS_HEADER:
            raise LedgerError(f"{name} line 1: header is not the reference header {' '.join(RESULTS_HEADER)}")
        rows = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            fields = line.split("\t")
            where = f"{name} line {number}"
            if len(fields) != len(RESULTS_HEADER):
                raise LedgerError(f"{where}: {len(fields)} fields, expected {len(RESULTS_HEADER)}")
            commit, score, runtime, budget, status, target, description, artifacts = fields
            if status not in STATUSES:
                raise LedgerError(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
            rows.append(
                ResultRow(
                    commit=commit,
                    score=_parse_float(score, "score", where, blank_ok=True),
                    runtime_seconds=_parse_float(runtime, "runtime_seconds", where, blank_ok=True) or 0.0,
                    budget=budget,
                    status=status,
                    target=target,
                    description=description,
                    artifacts=artifacts,
                )
            )
        return rows

    def rewrite_status(self, artifacts: str, status: str) -> None:
        """Change the status of the row whose ``artifacts`` is given (a human override)."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        rows = self.rows()
        if not any(row.artifacts == artifacts for row in rows):
            raise LedgerError(f"{self.results_path.name}: no row for {artifacts}")
        updated = [
            ResultRow(**{**asdict(row), "status": status}) if row.artifacts == artifacts else row
            for row in rows
        ]
        text = "\t".join(RESULTS_HEADER) + "\n" + "".join(row.to_line() for row in updated)
        tmp = self.results_path.with_name(self.results_path.name + ".tmp")
        with locked(self.results_path):
            tmp.write_text(text, encoding="utf-8")
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, self.results_path)

    # -- candidates.jsonl ---------------------------------------------------------------------

    def append_candidate(self, record: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        locked_append(self.candidates_path, json.dumps(record, sort_keys=True, default=str) + "\n")

    def candidates(self) -> list[dict]:
        records = []
        for number, line in enumerate(_complete_lines(self.candidates_path), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise LedgerError(f"{self.candidates_path} line {number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict) or "id" not in record:
                raise LedgerError(f"{self.candidates_path} line {number}: not a candidate record with an id")
            records.append(record)
        return records

    def latest_candidates(self) -> dict[str, dict]:
        """The last record per candidate id (later records supersede earlier ones)."""
        latest: dict[str, dict] = {}
        for record in self.candidates():
            latest[record["id"]] = record
        return latest

    def repair(self) -> list[str]:
        """Cut a torn last line left by a crash and restore the rows it cost (``repair_ledger``)."""
        return repair_ledger(self)


# -- mending a ledger a crash cut short -------------------------------------------------------
# Finding and mending ledgers that a crash cut short.
#
# A crash mid-write can leave the last line of ``results.tsv`` (or ``candidates.jsonl``) without
# its newline. Readers skip such a line, so every read also asks ``torn_files`` and reports it;
# ``repair_ledger`` (run by ``afr resume`` before anything appends) cuts the torn line and puts
# back every row that ``candidates.jsonl`` holds a final record for but ``results.tsv`` lacks.
# The campaign writes a candidate's record before its row, so the record is always there.

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
