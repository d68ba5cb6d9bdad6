"""Data bridge for CIFAR-10 (protected: candidates may not edit it).

Reads the standard python version of CIFAR-10, the ``cifar-10-batches-py`` folder
(``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``: pickled dicts whose
``data`` is uint8 ``(n, 3072)``, channel-major 32x32 images, and ``labels`` a list), under a
data root. If the folder is missing it is downloaded with torchvision when torchvision is
installed and the network allows; otherwise the error says where to put it.

Federation: the training images are split over the sites by label with a Dirichlet
distribution (the reference workflow's ``partition_data``: per class, shares drawn from
``Dir(alpha)``, sites already over an equal share get no more, redrawn until every site
has a minimum size), from ``split_seed``, never the run's seed. Each site's test split is
its share of the test images with the same per-class proportions as its training split,
so the two follow the same label skew and the sites' test splits partition the test set.
Splits are cached as ``.npz`` (atomic write) keyed by the sizes, alpha, seed and a hash of
the labels. Images come out normalised with CIFAR-10's channel mean and std, float32
``(n, 3, 32, 32)``. A profile's ``[heldout]`` section scores runs on a fixed part of each
test split (``tasks/shared/holdout.py``).

The bridge is a plain function API (``load_site``, ``describe``) that a trusted process can
call as well as a client: ``load_site(name, ..., environ)`` takes the evaluation subset from
``environ`` (the process environment when None).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tasks.shared.holdout import subset_indices

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
NUM_CLASSES = 10
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)
DEFAULT_ALPHA = 0.5
DEFAULT_SPLIT_SEED = 0
MIN_SITE_SIZE = 10


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # float32, (n, 3, 32, 32), normalised
    labels: np.ndarray  # int64, (n,)


@dataclass(frozen=True)
class Site:
    name: str
    train: Split
    test: Split


@dataclass(frozen=True)
class Images:
    images: np.ndarray  # uint8, (n, 3, 32, 32)
    labels: np.ndarray  # int64, (n,)


def batches_folder(data_root: str | Path) -> Path:
    """``DATA_ROOT/cifar-10-batches-py``, or DATA_ROOT itself when it is that folder."""
    root = Path(data_root).expanduser()
    return root if (root / TRAIN_BATCHES[0]).is_file() else root / FOLDER


def missing_files(data_root: str | Path) -> list[str]:
    folder = batches_folder(data_root)
    return [name for name in (*TRAIN_BATCHES, TEST_BATCH, META) if not (folder / name).is_file()]


def ensure_dataset(data_root: str | Path) -> Path:
    """The batches folder, downloaded first with torchvision when it is missing and that can."""
    if not missing_files(data_root):
        return batches_folder(data_root)
    reason = "torchvision is not installed to download it"
    try:
        from torchvision.datasets import CIFAR10  # optional: only for the download
    except ImportError:
        CIFAR10 = None
    if CIFAR10 is not None:
        try:
            CIFAR10(str(Path(data_root).expanduser()), train=True, download=True)
            if not missing_files(data_root):
                return batches_folder(data_root)
        except Exception as error:  # no network, a proxy, a full disk: say so in one line
            reason = f"the download failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    raise FileNotFoundError(
        f"CIFAR-10 not found: put the python version ({URL}, unpacked: {FOLDER}/ with "
        f"{', '.join(missing_files(data_root)[:3])}...) under {Path(data_root).expanduser()}; {reason}"
    )


def read_batch(path: Path) -> Images:
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: not a CIFAR-10 batch (data {data.shape}, {len(labels)} labels)")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
    return Images(data.reshape(-1, 3, 32, 32), labels)


@lru_cache(maxsize=2)
def load_images(data_root: str) -> tuple[Images, Images]:
    """(train, test) images of the data root, in file order."""
    folder = ensure_dataset(data_root)
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    train = Images(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
    return train, read_batch(folder / TEST_BATCH)


def label_names(data_root: str | Path) -> list[str]:
    with open(ensure_dataset(data_root) / META, "rb") as handle:
        meta = pickle.load(handle, encoding="bytes")
    return [name.decode() if isinstance(name, bytes) else str(name) for name in meta[b"label_names"]]


def dirichlet_split(labels: np.ndarray, num_sites: int, alpha: float, seed: int) -> list[np.ndarray]:
    """Training indices per site: per class, shares from Dir(alpha), redrawn until every site is big enough."""
    if alpha <= 0:
        raise ValueError(f"the Dirichlet alpha must be > 0, not {alpha}")
    rng = np.random.RandomState(seed)
    total = len(labels)
    # A tiny data set (a test fixture) cannot give every site the usual minimum.
    min_size = min(MIN_SITE_SIZE, total // (2 * num_sites))
    for _ in range(1000):
        sites: list[list[int]] = [[] for _ in range(num_sites)]
        for label in range(NUM_CLASSES):
            rows = np.flatnonzero(labels == label)
            rng.shuffle(rows)
            shares = rng.dirichlet(np.repeat(alpha, num_sites))
            shares = shares * np.array([len(site) < total / num_sites for site in sites])
            shares = shares / shares.sum()
            cuts = (np.cumsum(shares) * len(rows)).astype(int)[:-1]
            for site, part in zip(sites, np.split(rows, cuts), strict=True):
                site += part.tolist()
        if min(len(site) for site in sites) >= max(min_size, 1):
            return [np.array(sorted(site), dtype=np.int64) for site in sites]
    raise ValueError(
        f"no Dirichlet split of {total} images gives each of {num_sites} sites {min_size} images"
    )


def matching_test_split(
    train_labels: np.ndarray, train_sites: list[np.ndarray], test_labels: np.ndarray, seed: int
) -> list[np.ndarray]:
    """Test indices per site: each class's test images shared as the class's training images are."""
    rng = np.random.RandomState(seed + 1)
    sites: list[list[int]] = [[] for _ in train_sites]
    for label in range(NUM_CLASSES):
        rows = np.flatnonzero(test_labels == label)
        rng.shuffle(rows)
        counts = np.array([(train_labels[site] == label).sum() for site in train_sites], dtype=float)
        if counts.sum() == 0:
            continue
        cuts = np.round(np.cumsum(counts / counts.sum()) * len(rows)).astype(int)[:-1]
        for site, part in zip(sites, np.split(rows, cuts), strict=True):
            site += part.tolist()
    return [np.array(sorted(site), dtype=np.int64) for site in sites]


def cache_dir() -> Path:
    return Path(os.environ.get("AFR_DATA_CACHE") or Path.home() / ".cache" / "afr")


@lru_cache(maxsize=8)
def site_indices(
    data_root: str, num_sites: int, alpha: float, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, test) indices per site, from the cache or computed (and cached) once."""
    train, test = load_images(data_root)
    fingerprint = hashlib.sha256(train.labels.tobytes() + test.labels.tobytes()).hexdigest()[:16]
    path = cache_dir() / f"cifar10_split_{num_sites}sites_alpha{alpha:g}_seed{seed}_{fingerprint}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return (
                    [stored[f"train_{i}"] for i in range(num_sites)],
                    [stored[f"test_{i}"] for i in range(num_sites)],
                )
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is recomputed below
    train_sites = dirichlet_split(train.labels, num_sites, alpha, seed)
    test_sites = matching_test_split(train.labels, train_sites, test.labels, seed)
    empty = [f"site-{i + 1}" for i, rows in enumerate(test_sites) if len(rows) == 0]
    if empty:
        raise ValueError(f"the Dirichlet split leaves {', '.join(empty)} without test images; use more data")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"train_{i}": rows for i, rows in enumerate(train_sites)}
    arrays.update({f"test_{i}": rows for i, rows in enumerate(test_sites)})
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as handle:
        np.savez(handle, **arrays)
    os.replace(handle.name, path)
    return train_sites, test_sites


def normalise(images: np.ndarray) -> np.ndarray:
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)


def site_number(site_name: str, num_sites: int) -> int:
    number = int(site_name.removeprefix("site-")) if site_name.removeprefix("site-").isdigit() else 0
    if not 1 <= number <= num_sites:
        raise ValueError(f"CIFAR-10 with {num_sites} sites has site-1..site-{num_sites}, not {site_name!r}")
    return number


def load_site(
    site_name: str,
    data_root: str | Path,
    num_sites: int,
    alpha: float = DEFAULT_ALPHA,
    split_seed: int = DEFAULT_SPLIT_SEED,
    environ: Mapping[str, str] | None = None,
) -> Site:
    """A site's training view and the part of its test split ``environ`` asks for."""
    number = site_number(site_name, num_sites)
    root = str(Path(data_root).expanduser().resolve())
    train, test = load_images(root)
    train_sites, test_sites = site_indices(root, num_sites, float(alpha), int(split_seed))
    train_rows, test_rows = train_sites[number - 1], test_sites[number - 1]
    test_rows = test_rows[subset_indices(test.labels[test_rows], site_name, environ)]
    return Site(
        site_name,
        Split(normalise(train.images[train_rows]), train.labels[train_rows]),
        Split(normalise(test.images[test_rows]), test.labels[test_rows]),
    )


def describe(
    num_clients: int,
    data_root: str | Path = "data/cifar10",
    alpha: float = DEFAULT_ALPHA,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> list[dict]:
    """Per site: train and test sizes and class counts (for ``afr data``)."""
    root = str(Path(data_root).expanduser().resolve())
    train, test = load_images(root)
    train_sites, test_sites = site_indices(root, num_clients, float(alpha), int(split_seed))
    return [
        {
            "client": f"site-{number}",
            "source": f"Dirichlet alpha={alpha:g}",
            "train": len(train_rows),
            "test": len(test_rows),
            "train_classes": class_counts(train.labels[train_rows]),
            "test_classes": class_counts(test.labels[test_rows]),
        }
        for number, (train_rows, test_rows) in enumerate(zip(train_sites, test_sites, strict=True), start=1)
    ]


def class_counts(labels: np.ndarray) -> dict[str, int]:
    return {str(c): int((labels == c).sum()) for c in range(NUM_CLASSES)}
