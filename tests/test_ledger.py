"""results.tsv and candidates.jsonl: exact schema, locked appends, torn lines, clear errors."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from engine.store.ledger import RESULTS_HEADER, Ledger, LedgerError, ResultRow


def row(i: int, status: str = "discard", score: float | None = 0.5) -> ResultRow:
    return ResultRow(
        f"abc{i:04d}",
        score,
        12.34,
        "clients=4;rounds=15",
        status,
        "scalar",
        f"cand {i}\twith tab",
        f"runs/c{i:03d}",
    )


def test_header_and_row_format_match_the_reference(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append_row(row(1, "keep", 0.7213))
    ledger.append_row(
        ResultRow("abc0001", None, 3.0, "literature_loop", "literature", "literature", "review 1", "")
    )
    lines = ledger.results_path.read_text().split("\n")
    assert (
        lines[0]
        == "\t".join(RESULTS_HEADER)
        == "commit\tscore\truntime_seconds\tbudget\tstatus\ttarget\tdescription\tartifacts"
    )
    assert (
        lines[1] == "abc0001\t0.721300\t12.3\tclients=4;rounds=15\tkeep\tscalar\tcand 1 with tab\truns/c001"
    )
    assert lines[2].split("\t")[1] == ""  # a literature row has a blank score
    assert [r.status for r in ledger.rows()] == ["keep", "literature"]


def _append_many(path, start):
    ledger = Ledger(path)
    for i in range(start, start + 200):
        ledger.append_row(row(i))
        ledger.append_candidate({"id": f"c{i}", "payload": "x" * 3000})


def test_two_processes_never_interleave(tmp_path):
    Ledger(tmp_path).ensure()
    workers = [multiprocessing.Process(target=_append_many, args=(tmp_path, n * 1000)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ledger = Ledger(tmp_path)
    assert len(ledger.rows()) == 400
    assert len(ledger.candidates()) == 400
    assert all(len(record["payload"]) == 3000 for record in ledger.candidates())


def test_torn_last_line_is_ignored_then_repaired(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append_row(row(1))
    ledger.append_candidate({"id": "c001"})
    with open(ledger.results_path, "a") as handle:
        handle.write("abc0002\t0.5")  # the engine died mid-write
    with open(ledger.candidates_path, "a") as handle:
        handle.write('{"id": "c0')
    assert len(ledger.rows()) == 1 and len(ledger.candidates()) == 1
    ledger.append_row(row(3))  # an append first cuts the torn line
    assert [r.commit for r in ledger.rows()] == ["abc0001", "abc0003"]
    ledger.repair()
    assert ledger.candidates_path.read_text().endswith("}\n")
    assert len(ledger.candidates()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("commit\tscore\n", "results.tsv line 1: header is not the reference header"),
        (
            "\t".join(RESULTS_HEADER) + "\nabc\t0.5\t1.0\tb\tkeep\tscalar\n",
            "results.tsv line 2: 6 fields, expected 8",
        ),
        (
            "\t".join(RESULTS_HEADER) + "\nabc\tfast\t1.0\tb\tkeep\tscalar\td\ta\n",
            "results.tsv line 2: score 'fast' is not a number",
        ),
        (
            "\t".join(RESULTS_HEADER) + "\nabc\t0.5\t1.0\tb\twon\tscalar\td\ta\n",
            "results.tsv line 2: status 'won' is not one of",
        ),
    ],
)
def test_malformed_results_give_one_line_errors(tmp_path, content, message):
    ledger = Ledger(tmp_path)
    ledger.results_path.write_text(content)
    before = ledger.results_path.read_bytes()
    with pytest.raises(LedgerError) as caught:
        ledger.rows()
    assert str(caught.value).startswith(str(tmp_path / message)) and "\n" not in str(caught.value)
    assert ledger.results_path.read_bytes() == before  # nothing rewritten


def test_malformed_candidates_line_is_named(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.candidates_path.write_text('{"id": "c001"}\nnot json\n{"id": "c003"}\n')
    with pytest.raises(LedgerError, match=r"candidates.jsonl line 2: not JSON"):
        ledger.candidates()


def test_rewrite_status_is_atomic_and_keeps_other_rows(tmp_path):
    ledger = Ledger(tmp_path)
    for i in range(1, 4):
        ledger.append_row(row(i))
    ledger.rewrite_status("runs/c002", "keep")
    assert [r.status for r in ledger.rows()] == ["discard", "keep", "discard"]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(LedgerError, match="no row for runs/c009"):
        ledger.rewrite_status("runs/c009", "keep")
    assert oct(os.stat(ledger.results_path).st_mode)[-3:] == "644"
