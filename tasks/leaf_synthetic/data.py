"""Data bridge for LEAF Synthetic (protected: candidates may not edit it).

Regenerates LEAF's ``data/synthetic`` data set (Caldas et al. 2018, after the 2019 fix
that takes the softmax over classes) with its defaults: 1000 tasks (users), 5 classes,
60 dimensions, one cluster, seed 931231. The order of the random draws follows LEAF's
generator exactly, so the user sizes are LEAF's: 107,553 samples, mean 107.55, std 213.22.

Federation (the grouped-client approximation): user ``u`` goes to client ``site-(u % N + 1)``;
each user's samples are shuffled with a per-user seed and split 60/40 into train and test.
The generated set is cached as ``.npz`` (atomic write) so clients share one copy. A profile's
``[heldout]`` section scores runs on a fixed part of each test split (``tasks/shared/holdout.py``).
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

from tasks.shared.holdout import subset_indices
from tasks.shared.views import load_view

NUM_TASKS = 1000
NUM_CLASSES = 5
NUM_DIM = 60
SEED = 931231
TRAIN_FRACTION = 0.6
MIN_SAMPLES, MAX_SAMPLES = 5, 1000


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # float32, (n, 60)
    labels: np.ndarray  # int64, (n,)


@dataclass(frozen=True)
class Site:
    name: str
    users: tuple[int, ...]
    train: Split
    test: Split


def sample_counts(rng: np.random.RandomState) -> np.ndarray:
    counts = rng.lognormal(3, 2, NUM_TASKS).astype(int)
    return np.minimum(counts + MIN_SAMPLES, MAX_SAMPLES)


def generate() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """LEAF's generator, draw for draw: per user the features (n_k, 60) and labels (n_k,)."""
    rng = np.random.RandomState(SEED)
    counts = sample_counts(rng)
    rng = np.random.RandomState(SEED)  # LEAF re-seeds when it builds the data set
    q = rng.normal(0.0, 1.0, size=(NUM_DIM + 1, NUM_CLASSES, 1))
    sigma = np.diag(np.arange(1, NUM_DIM + 1, dtype=float) ** -1.2)
    cluster_loc = rng.normal(0.0, 1.0)
    cluster_mean = rng.normal(cluster_loc, 1.0, size=1)
    features, labels = [], []
    for n in counts:
        rng.choice(1, p=[1.0])  # the single cluster; the draw still advances the stream
        b = rng.normal(0.0, 1.0)
        mean = rng.normal(b, 1.0, size=NUM_DIM)
        x = np.ones((n, NUM_DIM + 1))
        x[:, 1:] = rng.multivariate_normal(mean, sigma, size=n)
        user_model = rng.normal(cluster_mean, 0.1, size=cluster_mean.shape)
        w = q @ user_model  # (61, 5)
        logits = x @ w + rng.normal(0.0, 0.1, size=(n, NUM_CLASSES))
        # argmax of the softmax over classes is the argmax of the logits.
        labels.append(np.argmax(logits, axis=1).astype(np.int64))
        features.append(x[:, 1:].astype(np.float32))
    return features, labels


def cache_dir() -> Path:
    root = os.environ.get("AFR_DATA_CACHE") or Path.home() / ".cache" / "afr"
    return Path(root)


@lru_cache(maxsize=1)
def load_users() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """All users' data, from the cache or generated (and cached) on first use."""
    path = cache_dir() / f"leaf_synthetic_{NUM_TASKS}x{NUM_DIM}x{NUM_CLASSES}_{SEED}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                sizes = stored["sizes"]
                return (
                    np.split(stored["features"], np.cumsum(sizes)[:-1]),
                    np.split(stored["labels"], np.cumsum(sizes)[:-1]),
                )
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is regenerated below
    features, labels = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as handle:
        np.savez(
            handle,
            sizes=np.array([len(y) for y in labels]),
            features=np.concatenate(features),
            labels=np.concatenate(labels),
        )
    os.replace(handle.name, path)
    return features, labels


def user_split(user: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user 60/40 sample split, shuffled with a seed derived from the user id."""
    seed = int.from_bytes(hashlib.sha256(f"leaf-synthetic-split-{user}".encode()).digest()[:4], "little")
    order = np.random.RandomState(seed).permutation(count)
    n_train = max(1, int(TRAIN_FRACTION * count))
    return order[:n_train], order[n_train:]


def load_site(site_name: str, num_clients: int, environ: Mapping[str, str] | None = None) -> Site:
    """A client's splits; its test split is the evaluation subset ``environ`` asks for
    (the process environment when None).

    In afr's sandbox the generated data is out of reach and the site's view written by afr is read instead.
    """
    view = load_view(site_name)
    if view is not None:
        return Site(site_name, (), Split(view[0], view[1]), Split(view[2], view[3]))
    site = _full_site(site_name, num_clients)
    keep = subset_indices(site.test.labels, site_name, environ)
    return Site(site.name, site.users, site.train, Split(site.test.features[keep], site.test.labels[keep]))


@lru_cache(maxsize=64)
def _full_site(site_name: str, num_clients: int) -> Site:
    number = int(site_name.removeprefix("site-")) if site_name.startswith("site-") else 0
    if not 1 <= number <= num_clients:
        raise ValueError(
            f"LEAF Synthetic with {num_clients} clients has site-1..site-{num_clients}, not {site_name!r}"
        )
    features, labels = load_users()
    users = tuple(u for u in range(NUM_TASKS) if u % num_clients == number - 1)
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for user in users:
        train_idx, test_idx = user_split(user, len(labels[user]))
        for part, index in (("train", train_idx), ("test", test_idx)):
            parts[part][0].append(features[user][index])
            parts[part][1].append(labels[user][index])
    splits = {part: Split(np.concatenate(x), np.concatenate(y)) for part, (x, y) in parts.items()}
    return Site(site_name, users, splits["train"], splits["test"])


def describe(num_clients: int) -> list[dict]:
    """Per client: users, train and test sizes and class counts (for ``afr data``)."""
    rows = []
    for number in range(1, num_clients + 1):
        site = _full_site(f"site-{number}", num_clients)
        rows.append(
            {
                "client": site.name,
                "source": f"{len(site.users)} users",
                "users": len(site.users),
                "train": int(len(site.train.labels)),
                "test": int(len(site.test.labels)),
                "train_classes": class_counts(site.train.labels),
                "test_classes": class_counts(site.test.labels),
            }
        )
    return rows


def class_counts(labels: np.ndarray) -> dict[str, int]:
    return {str(c): int((labels == c).sum()) for c in range(NUM_CLASSES)}
