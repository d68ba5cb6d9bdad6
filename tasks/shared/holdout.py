"""Which part of a client's evaluation split a run is scored on. Protected: candidates may not edit it.

A profile's ``[heldout]`` section splits every client's evaluation split once, with a
fixed seed, into a *validation* subset (what the campaign scores and selects on) and the
complementary *held-out* subset (scored only by ``afr heldout``). The engine's runner,
not the task code, chooses the subset and passes it as job flags; the protected
``tasks/shared/jobs.py`` writes it into the job's configuration as the client component
``JobEvaluationSubset``, which NVFlare builds in every site's job process (in the simulator
and at a real deployment's sites alike) and which applies it there; the task's protected data
bridge then applies ``subset_indices``. The submitter's environment never decides it: a
remote site never sees it. Without the component a run is scored on the whole split.

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
COMPONENT_ID = "afr_evaluation_subset"  # its id in config_fed_client.json (afr checks it before a prod submit)


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


class JobEvaluationSubset:
    """A client component of the job's configuration: the evaluation subset this job scores.

    NVFlare builds the components of ``config_fed_client.json`` in each site's job process
    before any task runs, so the subset is applied to that process here, where the client
    script and its data bridge read it. No NVFlare base class is needed: it handles no event.
    """

    def __init__(self, subset: str = "full", fraction: float = 0.0, seed: int = 0):
        if subset not in SUBSETS:
            raise ValueError(f"evaluation subset {subset!r} is not one of {', '.join(SUBSETS)}")
        self.subset, self.fraction, self.seed = subset, float(fraction), int(seed)
        for name in (SUBSET_VAR, FRACTION_VAR, SEED_VAR):
            os.environ.pop(name, None)  # nothing inherited from whoever started the site decides it
        os.environ.update(subset_environment(subset, fraction, seed))

    def __repr__(self) -> str:
        return f"JobEvaluationSubset({self.subset!r}, {self.fraction!r}, {self.seed!r})"
