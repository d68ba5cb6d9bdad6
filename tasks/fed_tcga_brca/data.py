"""Data bridge for Fed-TCGA-BRCA (protected: candidates may not edit it).

FLamby's ``fed_tcga_brca`` federation from the two bundled files (``tcga_data/SOURCE.md``):
``brca.csv`` holds one row per patient, its 39 clinical covariates (columns 1..39, already
one-hot encoded by FLamby; no further preprocessing, as in FLamby), the event indicator
``E`` (1: death observed, 0: censored) and the time ``T`` in days; ``train_test_split.csv``
assigns each patient to ``train_k`` or ``test_k`` of region ``k`` = 0..5, which is NVFlare
client ``site-(k+1)``. Rows keep ``brca.csv``'s order. Both files are checked against their
SHA-256 before use.

The bridge is a plain function API (``load_site``, ``describe``) that a trusted process can
call as well as a client: ``load_site(name, environ)`` returns the region's training view and
the part of its test split ``environ`` asks for (``tasks/shared/holdout.py``; the held-out
split is stratified by the event indicator).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.shared.holdout import subset_indices

DATA_DIR = Path(__file__).resolve().parent / "tcga_data"
SHA256 = {
    "brca.csv": "07cb53423f7d579d33cfdbf2cba57b2aee75318b85866c68ce39a75b1f1ba020",
    "train_test_split.csv": "1249c6543a4060ff0fdaf8510fc37017755836db6c9fc5e6af96057c36510990",
}
NUM_REGIONS = 6
NUM_FEATURES = 39


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # float32, (n, 39)
    events: np.ndarray  # float32, (n,), 1 when the death was observed, 0 when censored
    times: np.ndarray  # float32, (n,), days to the event or to censoring

    def __len__(self) -> int:
        return len(self.events)

    def subset(self, rows: np.ndarray) -> Split:
        return Split(self.features[rows], self.events[rows], self.times[rows])


@dataclass(frozen=True)
class Site:
    name: str
    region: int
    train: Split
    test: Split


def verify_files() -> None:
    """Refuse to train on data that is not byte-for-byte FLamby's release."""
    for name, expected in SHA256.items():
        path = DATA_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"missing Fed-TCGA-BRCA file {path}")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ValueError(f"{name}: SHA-256 {actual} does not match FLamby's release {expected}")


@lru_cache(maxsize=1)
def load_federation() -> tuple[Site, ...]:
    verify_files()
    table = pd.read_csv(DATA_DIR / "brca.csv")
    folds = pd.read_csv(DATA_DIR / "train_test_split.csv")
    if table.shape[1] != NUM_FEATURES + 3:
        raise ValueError(
            f"brca.csv: expected pid, {NUM_FEATURES} covariates, E and T; got {table.shape[1]} columns"
        )
    features = table.iloc[:, 1 : 1 + NUM_FEATURES].to_numpy(dtype=np.float32)
    events = table["E"].to_numpy(dtype=np.float32)
    times = table["T"].to_numpy(dtype=np.float32)
    fold_of = dict(zip(folds["pid"], folds["fold2"], strict=True))
    fold = np.array([fold_of.get(pid, "") for pid in table["pid"]])
    everything = Split(features, events, times)
    return tuple(
        Site(
            f"site-{region + 1}",
            region,
            everything.subset(np.flatnonzero(fold == f"train_{region}")),
            everything.subset(np.flatnonzero(fold == f"test_{region}")),
        )
        for region in range(NUM_REGIONS)
    )


def load_site(site_name: str, environ: Mapping[str, str] | None = None) -> Site:
    """A region's splits; its test split is the evaluation subset ``environ`` asks for."""
    for site in load_federation():
        if site.name == site_name:
            keep = subset_indices(site.test.events, site_name, environ)
            return Site(site.name, site.region, site.train, site.test.subset(keep))
    raise ValueError(f"Fed-TCGA-BRCA has clients site-1..site-{NUM_REGIONS}, not {site_name!r}")


def describe(num_clients: int = NUM_REGIONS) -> list[dict]:
    """Per client: region, train and test sizes, censored/observed counts (for ``afr data``)."""
    if num_clients != NUM_REGIONS:
        raise ValueError(f"Fed-TCGA-BRCA always has {NUM_REGIONS} clients, not {num_clients}")
    return [
        {
            "client": site.name,
            "source": f"region {site.region}",
            "train": len(site.train),
            "test": len(site.test),
            "train_classes": event_counts(site.train.events),
            "test_classes": event_counts(site.test.events),
        }
        for site in load_federation()
    ]


def event_counts(events: np.ndarray) -> dict[str, int]:
    """Censored (0) and observed (1) patients: the survival analogue of class balance."""
    return {"0": int((events == 0).sum()), "1": int((events == 1).sum())}
