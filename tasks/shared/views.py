"""Per-site data views written by afr's trusted side. Protected: candidates may not edit it.

When the engine runs a job in its sandbox, the raw data files are hidden and each client
reads the view afr wrote for it instead: its training split and the evaluation rows the
job may score itself on (never the held-out ones). ``AFR_DATA_VIEW`` names the folder;
without it a task's data bridge reads its raw files as before.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VIEW_VAR = "AFR_DATA_VIEW"
VIEW_FILES = ("train_features", "train_labels", "eval_features", "eval_labels")


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
