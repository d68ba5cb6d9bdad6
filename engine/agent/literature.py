"""When to enter the literature loop (plateau watchdog, repeated crashes), the symptoms it starts
from, and the bundled bibliography it searches. The cards and their ranking: literature_cards.py."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

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
    key: str
    name: str  # how a worksheet names it
    title: str
    source: str  # arXiv id
    summary: str
    args: dict  # the mutable-arg change that implements it in the bundled tasks
    keywords: tuple[str, ...]


BIBLIOGRAPHY = (
    Mechanism(
        "fedprox",
        "FedProx",
        "Federated Optimization in Heterogeneous Networks (FedProx)",
        "arXiv:1812.06127",
        "A proximal term (mu/2)||w - w_global||^2 keeps local models near the global one under "
        "heterogeneous data.",
        {"fedprox_mu": 0.01},
        ("heterogeneity", "drift", "proximal", "local"),
    ),
    Mechanism(
        "fedavgm",
        "FedAvgM",
        "Measuring the Effects of Non-Identical Data Distribution (FedAvgM)",
        "arXiv:1909.06335",
        "Server momentum on the averaged update smooths noisy rounds under non-IID data.",
        {"aggregator": "fedavgm", "server_lr": 1.0, "server_momentum": 0.9},
        ("momentum", "server", "non-iid", "oscillation"),
    ),
    Mechanism(
        "fedadam",
        "FedAdam",
        "Adaptive Federated Optimization (FedOpt / FedAdam)",
        "arXiv:2003.00295",
        "An adaptive server optimiser (Adam) on the pseudo-gradient; per-coordinate step sizes help "
        "badly scaled features.",
        {"aggregator": "fedadam", "server_lr": 0.03},
        ("adaptive", "server", "scale", "optimizer"),
    ),
    Mechanism(
        "scaffold",
        "SCAFFOLD",
        "SCAFFOLD: Stochastic Controlled Averaging",
        "arXiv:1910.06378",
        "Control variates correct client drift caused by heterogeneous local objectives.",
        {"aggregator": "scaffold"},
        ("drift", "variance", "heterogeneity", "control"),
    ),
    Mechanism(
        "median",
        "coordinate-wise median",
        "Byzantine-Robust Distributed Learning (coordinate-wise median)",
        "arXiv:1803.01498",
        "The coordinate-wise median of client updates resists outlying clients.",
        {"aggregator": "median"},
        ("robust", "outlier", "median"),
    ),
    Mechanism(
        "trimmed_mean",
        "trimmed mean",
        "Byzantine-Robust Distributed Learning (trimmed mean)",
        "arXiv:1803.01498",
        "Averaging after trimming extreme coordinates; with few clients the median is its limit.",
        {"aggregator": "median"},
        ("robust", "outlier", "trimmed"),
    ),
)


def search(query: str) -> list[Mechanism]:
    """Bibliography entries whose words match the query, best first."""
    words = {w.strip(".,;:!?\"'()").lower() for w in query.split()}
    words = {w for w in words if len(w) > 2}
    scored = []
    for entry in BIBLIOGRAPHY:
        text = f"{entry.key} {entry.title} {entry.summary} {' '.join(entry.keywords)}".lower()
        hits = sum(1 for w in words if re.search(rf"\b{re.escape(w)}", text))  # word starts only
        if hits:
            scored.append((hits, entry))
    return [entry for _, entry in sorted(scored, key=lambda item: -item[0])]
