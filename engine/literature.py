"""The plateau watchdog and the bundled bibliography the literature loop draws from."""

from __future__ import annotations

from dataclasses import dataclass

from engine.ledger import ResultRow


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


@dataclass(frozen=True)
class Mechanism:
    key: str
    title: str
    source: str  # arXiv id
    summary: str
    args: dict  # the mutable-arg change that implements it in the bundled tasks
    keywords: tuple[str, ...]


BIBLIOGRAPHY = (
    Mechanism(
        "fedprox",
        "Federated Optimization in Heterogeneous Networks (FedProx)",
        "arXiv:1812.06127",
        "A proximal term (mu/2)||w - w_global||^2 keeps local models near the global one under "
        "heterogeneous data.",
        {"fedprox_mu": 0.01},
        ("heterogeneity", "drift", "proximal", "local"),
    ),
    Mechanism(
        "fedavgm",
        "Measuring the Effects of Non-Identical Data Distribution (FedAvgM)",
        "arXiv:1909.06335",
        "Server momentum on the averaged update smooths noisy rounds under non-IID data.",
        {"aggregator": "fedavgm", "server_lr": 1.0, "server_momentum": 0.9},
        ("momentum", "server", "non-iid", "oscillation"),
    ),
    Mechanism(
        "fedadam",
        "Adaptive Federated Optimization (FedOpt / FedAdam)",
        "arXiv:2003.00295",
        "An adaptive server optimiser (Adam) on the pseudo-gradient; per-coordinate step sizes help "
        "badly scaled features.",
        {"aggregator": "fedadam", "server_lr": 0.03},
        ("adaptive", "server", "scale", "optimizer"),
    ),
    Mechanism(
        "scaffold",
        "SCAFFOLD: Stochastic Controlled Averaging",
        "arXiv:1910.06378",
        "Control variates correct client drift caused by heterogeneous local objectives.",
        {"aggregator": "scaffold"},
        ("drift", "variance", "heterogeneity", "control"),
    ),
    Mechanism(
        "median",
        "Byzantine-Robust Distributed Learning (coordinate-wise median)",
        "arXiv:1803.01498",
        "The coordinate-wise median of client updates resists outlying clients.",
        {"aggregator": "median"},
        ("robust", "outlier", "median"),
    ),
    Mechanism(
        "trimmed_mean",
        "Byzantine-Robust Distributed Learning (trimmed mean)",
        "arXiv:1803.01498",
        "Averaging after trimming extreme coordinates; with few clients the median is its limit.",
        {"aggregator": "median"},
        ("robust", "outlier", "trimmed"),
    ),
)


def search(query: str) -> list[Mechanism]:
    """Bibliography entries whose words match the query, best first."""
    words = {w.strip(".,").lower() for w in query.split() if len(w) > 2}
    scored = []
    for entry in BIBLIOGRAPHY:
        text = f"{entry.key} {entry.title} {entry.summary} {' '.join(entry.keywords)}".lower()
        hits = sum(1 for w in words if w in text)
        if hits:
            scored.append((hits, entry))
    return [entry for _, entry in sorted(scored, key=lambda item: -item[0])]
