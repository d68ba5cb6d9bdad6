"""When to enter the literature loop (plateau watchdog, repeated crashes), the symptoms it starts
from, and the bundled bibliography it searches. The cards and their ranking: literature_cards.py."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import tomllib

from engine.store.ledger import ResultRow


@dataclass(frozen=True)
class WatchdogState:
    recommend_literature: bool
    scored_since_reset: int
    threshold: int
    reset_source: str  # start, material_improvement or literature

    @property
    def reason(self) -> str:
        return (
            f"{self.scored_since_reset} scored candidates since the last "
            f"{self.reset_source.replace('_', ' ')} (threshold {self.threshold})"
        )


def watchdog(
    rows: list[ResultRow], max_scored_since_reset: int, min_delta: float, maximize: bool = True
) -> WatchdogState:
    """The reference plateau rule: recommend literature mode once ``max_scored_since_reset``
    scored non-crash candidates have passed since the later of the last material improvement
    (beating the running best by more than ``min_delta``) and the last literature row."""
    material_index = literature_index = None
    running = None
    for index, row in enumerate(rows):
        if row.status == "literature":
            literature_index = index
        if row.score is None or row.status == "crash":
            continue
        gain = None if running is None else (row.score - running if maximize else running - row.score)
        if running is None or gain > min_delta:
            running = row.score
            material_index = index
    anchors = [
        (i, source)
        for i, source in ((material_index, "material_improvement"), (literature_index, "literature"))
        if i is not None
    ]
    anchor, source = max(anchors) if anchors else (-1, "start")
    scored = sum(
        1 for row in rows[anchor + 1 :] if row.score is not None and row.status not in ("crash", "literature")
    )
    return WatchdogState(scored >= max_scored_since_reset, scored, max_scored_since_reset, source)


CRASH_TRIGGER = 3  # crashes sharing a cause since the last review that start a new one


def crash_signature(error: str) -> str:
    """A crash cause with the run-specific parts (numbers, paths, hex ids) removed."""
    line = (error or "").strip().splitlines()[-1] if (error or "").strip() else ""
    line = re.sub(r"(/[\w.-]+)+", "<path>", line)
    line = re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?", "<n>", line)
    return line[:120]


def shared_crash_cause(crash_errors: list[str], threshold: int = CRASH_TRIGGER) -> str:
    """The cause shared by ``threshold`` or more of these crashes (engine interruptions excluded)."""
    causes = Counter(crash_signature(e) for e in crash_errors if e and e != "interrupted")
    cause, count = causes.most_common(1)[0] if causes else ("", 0)
    return cause if cause and count >= threshold else ""


def symptoms(rows: list[ResultRow], records: list[dict], maximize: bool, trigger: str = "") -> list[str]:
    """What the literature loop starts from: one line per observed symptom."""
    scored = [r for r in rows if r.score is not None and r.status not in ("crash", "literature")]
    lines = [f"trigger: {trigger}"] if trigger else []
    if scored:
        best = max(scored, key=lambda r: r.score if maximize else -r.score)
        lines.append(f"baseline {scored[0].score:.6f}; best {best.score:.6f} ({best.description})")
    kept = sum(1 for r in rows if r.status == "keep")
    lines.append(
        f"{len(scored)} scored candidates, {kept} kept, {sum(r.status == 'crash' for r in rows)} crashed"
    )
    null_axes: Counter[str] = Counter()
    for record in records:
        if record.get("status") == "discard":
            null_axes.update((record.get("arg_changes") or {}).keys())
    if null_axes:
        lines.append(
            "axes changed in discarded candidates: "
            + ", ".join(f"{name} ({count}x)" for name, count in null_axes.most_common(6))
        )
    spread = [rec["per_site"] for rec in records if rec.get("status") == "keep" and rec.get("per_site")]
    if spread:
        sites = spread[-1]
        low, high = min(sites, key=sites.get), max(sites, key=sites.get)
        lines.append(f"per-site scores of the best kept: {low} {sites[low]:.3f} to {high} {sites[high]:.3f}")
    causes = Counter(crash_signature(r.get("error", "")) for r in records if r.get("status") == "crash")
    for cause, count in causes.most_common(2):
        lines.append(f"crash cause ({count}x): {cause}")
    return lines


@dataclass(frozen=True)
class Mechanism:
    """One bibliography entry: a paper and the mechanism a campaign can take from it."""

    key: str
    name: str  # how a worksheet names it
    title: str
    source: str  # "arXiv:<id>"
    summary: str  # afr's own one- or two-sentence abstract
    args: dict  # the mutable-arg change that implements it in the bundled tasks ({} = code)
    keywords: tuple[str, ...]
    authors: tuple[str, ...] = ()
    year: int = 0
    mechanism: str = ""
    code: str = ""  # the editable file a code change would touch
    core: bool = False  # one per family: the scripted proposer drafts its cards from these


BIBLIOGRAPHY_FILE = Path(__file__).with_name("bibliography.toml")


def load_bibliography(path: Path = BIBLIOGRAPHY_FILE) -> tuple[Mechanism, ...]:
    """The bundled bibliography (``bibliography.toml``); a malformed entry fails loudly, naming its key."""
    entries = []
    for raw in tomllib.loads(path.read_text(encoding="utf-8"))["paper"]:
        try:
            entries.append(
                Mechanism(
                    raw["key"],
                    raw["name"],
                    raw["title"],
                    f"arXiv:{raw['arxiv']}",
                    raw["abstract"],
                    dict(raw.get("args", {})),
                    tuple(raw.get("keywords", ())),
                    tuple(raw.get("authors", ())),
                    int(raw.get("year", 0)),
                    raw.get("mechanism", ""),
                    raw.get("code", ""),
                    bool(raw.get("core", False)),
                )
            )
        except KeyError as error:
            raise ValueError(f"{path.name}: entry {raw.get('key', '?')} lacks {error}") from None
    return tuple(entries)


BIBLIOGRAPHY = load_bibliography()
STOPWORDS = frozenset(["the", "and", "for", "with", "from", "into", "that", "this", "than", "what", "when", "does", "not", "are", "but", "its", "per"])


def _words(text: str) -> set[str]:
    words = {w.strip(".,;:!?\"'()[]{}").lower() for w in re.split(r"[\s/]+", text)}
    return {w for w in words if len(w) > 2 and w not in STOPWORDS and re.search(r"[a-z]", w)}


def search(query: str, limit: int = 8) -> list[Mechanism]:
    """Bibliography entries matching the query's words, best first.

    A word counts 3 in the entry's keywords, 2 in its name or mechanism, 1 in its title or
    abstract (matching word starts, so "heterogeneous" finds "heterogeneity" only through a
    shared stem the keyword list spells out)."""
    words = _words(query)
    scored = []
    for index, entry in enumerate(BIBLIOGRAPHY):
        fields = (
            (3, " ".join(entry.keywords)),
            (2, f"{entry.key} {entry.name} {entry.mechanism}"),
            (1, f"{entry.title} {entry.summary}"),
        )
        score = 0
        for word in words:
            pattern = re.compile(rf"\b{re.escape(word[:6]) if len(word) > 6 else re.escape(word)}")
            score += max((weight for weight, text in fields if pattern.search(text.lower())), default=0)
        if score:
            scored.append((-score, index, entry))
    return [entry for _, _, entry in sorted(scored)[:limit]]
