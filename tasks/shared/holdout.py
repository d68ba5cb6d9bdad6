"""Which part of a client's evaluation split a run is scored on. Protected: candidates may not edit it.

A profile's ``[heldout]`` section splits every client's evaluation split once, with a
fixed seed, into a *validation* subset (what the campaign scores and selects on) and the
complementary *held-out* subset (scored only by ``afr heldout``). The engine's runner,
not the task code, chooses the subset: it sets the variables below in the job's
environment, which NVFlare's client processes inherit, and the task's protected data
bridge applies ``subset_indices``. Without them a run is scored on the whole split.

The split is stratified by label, so both subsets keep each client's class balance.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping

import numpy as np

SUBSET_VAR = "AFR_EVAL_SUBSET"  # "validation", "heldout"; unset or "full": the whole split
FRACTION_VAR = "AFR_HELDOUT_FRACTION"  # share of each client's evaluation split held out
SEED_VAR = "AFR_HELDOUT_SEED"
SUBSETS = ("full", "validation", "heldout")


def heldout_mask(labels: np.ndarray, fraction: float, seed: int, site_name: str) -> np.ndarray:
    """True for the rows of ``labels`` that are held out; the same every time for a site.

    Per class, ``round(fraction * n)`` rows are held out, but never all of a client's rows
    and never none of them when it has two or more: both subsets must be scorable.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be between 0 and 1, not {fraction}")
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng([seed, zlib.crc32(site_name.encode())])
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        mask[rows[: int(round(fraction * len(rows)))]] = True
    if len(labels) >= 2:
        if mask.all():
            mask[np.flatnonzero(mask)[rng.integers(mask.sum())]] = False
        elif not mask.any():
            mask[rng.integers(len(labels))] = True
    return mask


def requested_subset(environ: Mapping[str, str] | None = None) -> tuple[str, float, int]:
    """The subset the engine asked for, with its fraction and seed (fraction 0 for ``full``)."""
    environ = os.environ if environ is None else environ
    subset = environ.get(SUBSET_VAR, "full") or "full"
    if subset not in SUBSETS:
        raise ValueError(f"{SUBSET_VAR}={subset!r} is not one of {', '.join(SUBSETS)}")
    if subset == "full":
        return subset, 0.0, 0
    try:
        return subset, float(environ[FRACTION_VAR]), int(environ[SEED_VAR])
    except (KeyError, ValueError):
        raise ValueError(f"{SUBSET_VAR}={subset} needs {FRACTION_VAR} and an integer {SEED_VAR}") from None


def subset_indices(
    labels: np.ndarray, site_name: str, environ: Mapping[str, str] | None = None
) -> np.ndarray:
    """Row indices of a client's evaluation split that this run is scored on."""
    subset, fraction, seed = requested_subset(environ)
    count = len(np.asarray(labels).reshape(-1))
    if subset == "full":
        return np.arange(count)
    mask = heldout_mask(labels, fraction, seed, site_name)
    return np.flatnonzero(mask if subset == "heldout" else ~mask)


def subset_environment(subset: str, fraction: float, seed: int) -> dict[str, str]:
    """The variables that make a job score on ``subset`` (what the engine's runner sets)."""
    if subset not in SUBSETS:
        raise ValueError(f"evaluation subset {subset!r} is not one of {', '.join(SUBSETS)}")
    if subset == "full":
        return {SUBSET_VAR: "full"}
    return {SUBSET_VAR: subset, FRACTION_VAR: repr(float(fraction)), SEED_VAR: str(int(seed))}
