"""Data bridge for Fed-Heart-Disease (protected: candidates may not edit it).

Rebuilds FLamby's ``fed_heart_disease`` federation from the four bundled UCI files:
``?`` is missing; columns 10, 11 and 12 are dropped; rows with a missing value are dropped;
the label is ``num > 0``; columns 2 (chest pain type) and 6 (resting ECG) are one-hot
encoded over all hospitals together with the first level dropped, giving 13 features;
each hospital is split 66/34 with scikit-learn's ``train_test_split(random_state=43,
shuffle=True)``, stratified on the label when every class has more than two rows. As in
FLamby (``normalize=True``, its default), every hospital's features, train and test alike,
are standardised with that hospital's own training mean and (unbiased) standard deviation:
``(x - mean) / (std + 1e-9)``. The split does not depend on the run's seed. A profile's
``[heldout]`` section scores runs on a fixed part of each test split
(``tasks/shared/holdout.py``).

The bridge is a plain function API (``load_site``, ``describe``) so a trusted process can
call it as well as a client: ``load_site(name, environ)`` takes the evaluation subset from
``environ`` (the process environment when None).

Building the split needs pandas and scikit-learn, about a second of imports in every site
process; the built arrays are cached (numpy only to read back) and a cache is used only when
its content hashes to ``FEDERATION_SHA256``, so a damaged or edited cache is never trained on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks.shared.holdout import requested_subset, subset_indices
from tasks.shared.views import load_site_data, load_view, scored_rows_line, write_view

DATA_DIR = Path(__file__).resolve().parent / "uci_data"
# site-1 .. site-4, in FLamby's centre order.
HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
SHA256 = {
    "cleveland": "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8",
    "hungarian": "d1ad108f785768cd3d7e82dc522e6f5a61eea93cccfb3a46ee8076f73fc3d796",
    "switzerland": "834a405ccf5b66ab4056bb77794adc8df0b7125186454c0a1d002d33c6c3b314",
    "va": "e7c93d8d0d2acdadfa4c5e8de768e2191e7f618b952e29623f1f0d5949ff6b8f",
}
NUM_FEATURES = 13
TRAIN_FRACTION = 0.66
SPLIT_SEED = 43
STD_EPSILON = 1e-9  # FLamby's guard against a zero standard deviation
# SHA-256 of the built federation (``federation_digest``): what the cache must hold.
FEDERATION_SHA256 = "6f910ab43ec0632388188af0cddf03bfd083e301e6b16133e1c65f9af05ad788"
PARTS = ("train", "test")


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # float32, (n, 13), standardised with the hospital's training statistics
    labels: np.ndarray  # float32, (n,), 0 or 1


@dataclass(frozen=True)
class Site:
    name: str
    hospital: str
    train: Split
    test: Split


def data_file(hospital: str) -> Path:
    return DATA_DIR / f"processed.{hospital}.data"


def verify_files() -> None:
    """Refuse to train on data that is not byte-for-byte the bundled UCI release."""
    for hospital, expected in SHA256.items():
        path = data_file(hospital)
        if not path.is_file():
            raise FileNotFoundError(f"missing Fed-Heart-Disease file {path}")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ValueError(f"{path.name}: SHA-256 {actual} does not match the UCI release {expected}")


def federation_digest(sites: tuple[Site, ...]) -> str:
    digest = hashlib.sha256()
    for site in sites:
        digest.update(f"{site.name}/{site.hospital}".encode())
        for part in (site.train, site.test):
            for array in (part.features, part.labels):
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def cache_path() -> Path:
    root = os.environ.get("AFR_DATA_CACHE") or Path.home() / ".cache" / "afr"
    return Path(root) / f"fed_heart_disease_{FEDERATION_SHA256[:16]}.npz"


def read_cache() -> tuple[Site, ...] | None:
    try:
        with np.load(cache_path()) as stored:
            sites = tuple(
                Site(
                    f"site-{number}",
                    hospital,
                    *(
                        Split(stored[f"{hospital}_{part}_x"], stored[f"{hospital}_{part}_y"])
                        for part in PARTS
                    ),
                )
                for number, hospital in enumerate(HOSPITALS, start=1)
            )
    except (OSError, KeyError, ValueError):
        return None
    return sites if federation_digest(sites) == FEDERATION_SHA256 else None


def write_cache(sites: tuple[Site, ...]) -> None:
    """Best effort: a read-only cache directory only costs the next process the build."""
    arrays = {}
    for site in sites:
        for part in PARTS:
            split = getattr(site, part)
            arrays[f"{site.hospital}_{part}_x"], arrays[f"{site.hospital}_{part}_y"] = (
                split.features,
                split.labels,
            )
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as handle:
            np.savez(handle, **arrays)
        os.replace(handle.name, path)
    except OSError:
        pass


@lru_cache(maxsize=1)
def load_federation() -> tuple[Site, ...]:
    verify_files()
    sites = read_cache()
    if sites is None:
        sites = build_federation()
        if federation_digest(sites) == FEDERATION_SHA256:
            write_cache(sites)
    return sites


def build_federation() -> tuple[Site, ...]:
    """FLamby's federation from the UCI files, standardised per hospital (see the module docstring)."""
    import pandas as pd  # only to build the cache: a site process reads the cache with numpy
    from sklearn.model_selection import train_test_split

    frames, hospital_of_row, split_of_row = [], [], []
    for hospital in HOSPITALS:
        frame = pd.read_csv(data_file(hospital), header=None, na_values="?")
        frame = frame.drop(columns=[10, 11, 12]).dropna(axis=0).reset_index(drop=True)
        labels = (frame[13] > 0).astype(int)
        counts = labels.value_counts()
        stratify = labels if len(counts) > 1 and (counts > 2).all() else None
        train_idx, _ = train_test_split(
            np.arange(len(frame)),
            train_size=TRAIN_FRACTION,
            test_size=1.0 - TRAIN_FRACTION,
            random_state=SPLIT_SEED,
            shuffle=True,
            stratify=stratify,
        )
        in_train = np.zeros(len(frame), dtype=bool)
        in_train[train_idx] = True
        frames.append(frame)
        hospital_of_row += [hospital] * len(frame)
        split_of_row.append(np.where(in_train, "train", "test"))
    table = pd.concat(frames, ignore_index=True)
    labels = (table.pop(13) > 0).to_numpy(dtype=np.float32)
    features = pd.get_dummies(table, columns=[2, 6], drop_first=True).to_numpy(dtype=np.float32)
    if features.shape[1] != NUM_FEATURES:
        raise ValueError(f"expected {NUM_FEATURES} features after encoding, got {features.shape[1]}")
    hospital_of_row = np.asarray(hospital_of_row)
    split_of_row = np.concatenate(split_of_row)
    sites = []
    for number, hospital in enumerate(HOSPITALS, start=1):
        rows = hospital_of_row == hospital
        train_rows = rows & (split_of_row == "train")
        mean = features[train_rows].mean(axis=0)
        std = features[train_rows].std(axis=0, ddof=1)
        parts = {
            part: Split(
                ((features[rows & (split_of_row == part)] - mean) / (std + STD_EPSILON)).astype(np.float32),
                labels[rows & (split_of_row == part)],
            )
            for part in ("train", "test")
        }
        sites.append(Site(f"site-{number}", hospital, parts["train"], parts["test"]))
    return tuple(sites)


def load_site(site_name: str, environ: Mapping[str, str] | None = None) -> Site:
    """A hospital's splits; its test split is the evaluation subset ``environ`` asks for.

    In afr's sandbox the raw files are hidden and the site's view written by afr is read instead.
    At a real deployment's site, ``AFR_SITE_DATA`` names the folder with that site's own splits
    (``export_site`` writes one from the bundled files); the job's configuration picks the scored rows.
    """
    view = load_view(site_name)
    if view is not None:
        number = int(site_name.removeprefix("site-")) if site_name.startswith("site-") else 0
        hospital = HOSPITALS[number - 1] if 1 <= number <= len(HOSPITALS) else "view"
        return Site(site_name, hospital, Split(view[0], view[1]), Split(view[2], view[3]))
    deployed = load_site_data()
    if deployed is not None:
        keep = subset_indices(deployed[3], site_name, environ)
        print(scored_rows_line(site_name, requested_subset(environ)[0], keep), flush=True)
        number = int(site_name.removeprefix("site-")) if site_name.startswith("site-") else 0
        hospital = HOSPITALS[number - 1] if 1 <= number <= len(HOSPITALS) else "site data"
        return Site(site_name, hospital, Split(deployed[0], deployed[1]), Split(deployed[2][keep], deployed[3][keep]))
    for site in load_federation():
        if site.name == site_name:
            keep = subset_indices(site.test.labels, site_name, environ)
            test = Split(site.test.features[keep], site.test.labels[keep])
            return Site(site.name, site.hospital, site.train, test)
    raise ValueError(f"Fed-Heart-Disease has clients site-1..site-{len(HOSPITALS)}, not {site_name!r}")


def describe(num_clients: int = len(HOSPITALS)) -> list[dict]:
    """Per client: hospital, train and test sizes, positive-label share (for ``afr data``)."""
    if num_clients != len(HOSPITALS):
        raise ValueError(f"Fed-Heart-Disease always has {len(HOSPITALS)} clients, not {num_clients}")
    return [
        {
            "client": site.name,
            "source": site.hospital,
            "train": int(len(site.train.labels)),
            "test": int(len(site.test.labels)),
            "train_classes": class_counts(site.train.labels, 2),
            "test_classes": class_counts(site.test.labels, 2),
        }
        for site in load_federation()
    ]


def class_counts(labels: np.ndarray, num_classes: int) -> dict[str, int]:
    labels = labels.astype(int)
    return {str(c): int((labels == c).sum()) for c in range(num_classes)}


def export_site(site_name: str, folder: Path) -> None:
    """Write ``site_name``'s own splits (whole test split) as a deployed site's ``AFR_SITE_DATA`` folder."""
    for site in load_federation():
        if site.name == site_name:
            arrays = {
                "train_features": site.train.features,
                "train_labels": site.train.labels,
                "eval_features": site.test.features,
                "eval_labels": site.test.labels,
            }
            write_view(Path(folder), arrays)
            return
    raise ValueError(f"Fed-Heart-Disease has clients site-1..site-{len(HOSPITALS)}, not {site_name!r}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write one hospital's data folder for a real deployment's site")
    parser.add_argument("site", help="site-1 (Cleveland) .. site-4 (Long Beach VA)")
    parser.add_argument("folder", type=Path, help="the folder the site's AFR_SITE_DATA will name")
    options = parser.parse_args()
    export_site(options.site, options.folder)
    print(f"wrote {options.site}'s data to {options.folder}")
