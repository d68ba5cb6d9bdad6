"""Per-site data views written by afr's trusted side. Protected: candidates may not edit it.

When the engine runs a job in its sandbox, the raw data files are hidden and each client
reads the view afr wrote for it instead: its training split and the evaluation rows the
job may score itself on (never the held-out ones). ``AFR_DATA_VIEW`` names the folder;
without it a task's data bridge reads its raw files as before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

VIEW_VAR = "AFR_DATA_VIEW"
VIEW_FILES = ("train_features", "train_labels", "eval_features", "eval_labels")
# At a real deployment's site: the folder holding that site's own data (set where the site is started).
# Same files as a view, but with the site's whole evaluation split: the job's configuration decides
# which of its rows are scored (``tasks/shared/holdout.py``).
SITE_DATA_VAR = "AFR_SITE_DATA"


def load_view(site_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(train features, train labels, eval features, eval labels) of ``site_name``, or None without a view."""
    root = os.environ.get(VIEW_VAR)
    if not root:
        return None
    folder = Path(root) / site_name
    if not folder.is_dir():
        raise ValueError(f"{VIEW_VAR}={root} has no view for {site_name!r}")
    train_x, train_y, eval_x, eval_y = (np.load(folder / f"{name}.npy", allow_pickle=False) for name in VIEW_FILES)
    return train_x, train_y, eval_x, eval_y


def write_view(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one site's view (used by afr's trusted data export, not by jobs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in VIEW_FILES:
        np.save(folder / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)


def load_site_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(train features, train labels, evaluation features, evaluation labels) at a deployed site, or None."""
    root = os.environ.get(SITE_DATA_VAR)
    if not root:
        return None
    folder = Path(root)
    missing = [name for name in VIEW_FILES if not (folder / f"{name}.npy").is_file()]
    if missing:
        raise ValueError(f"{SITE_DATA_VAR}={root} lacks {', '.join(name + '.npy' for name in missing)}")
    train_x, train_y, eval_x, eval_y = (np.load(folder / f"{name}.npy", allow_pickle=False) for name in VIEW_FILES)
    return train_x, train_y, eval_x, eval_y


def scored_rows_line(site_name: str, subset: str, rows: np.ndarray) -> str:
    """The line a deployed site logs about the evaluation rows it scores (its count and their ids' digest)."""
    ids = np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
    digest = hashlib.sha256(ids.tobytes()).hexdigest()
    return f"afr-site: {site_name} scores {subset} rows: {len(ids)} ids-sha256={digest}"
