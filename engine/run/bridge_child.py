"""Trusted data export, run by the engine as ``python -I bridge_child.py SPEC_JSON``.

It imports the task's protected data bridge from afr's pinned, hash-verified copy (never
from a candidate's worktree) and writes, per site:
  <trusted>/inputs/<site>.npy   scored-split features (the evaluator's model process reads these)
  <trusted>/labels/<site>.npy   scored-split labels (only the engine reads these)
  <view>/<site>/*.npy           the job's view: training split and its own evaluation rows
This file imports nothing from afr: it is a script the engine starts, not a module it uses.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np


def main(spec: dict) -> dict:
    sys.path.insert(0, spec["bridge_root"])
    os.environ.pop("AFR_DATA_VIEW", None)  # the trusted side always reads the raw data
    os.environ.pop("AFR_SITE_DATA", None)  # ... the bundled files, never a deployed site's own folder
    os.environ["AFR_EVAL_SUBSET"] = "full"  # subsets are applied below, per purpose
    data = importlib.import_module(spec["task_package"] + ".data")
    holdout = importlib.import_module("tasks.shared.holdout")
    views = importlib.import_module("tasks.shared.views")
    takes_clients = "num_clients" in inspect.signature(data.load_site).parameters  # LEAF: (site, num_clients)
    trusted, counts = Path(spec["trusted_dir"]), {}
    (trusted / "inputs").mkdir(parents=True, exist_ok=True)
    (trusted / "labels").mkdir(parents=True, exist_ok=True)
    for name in spec["sites"]:
        site = data.load_site(name, spec["num_clients"]) if takes_clients else data.load_site(name)
        test_x, test_y = np.asarray(site.test.features), np.asarray(site.test.labels)
        scored = holdout.subset_indices(test_y, name, environ=spec["scored_env"])
        np.save(trusted / "inputs" / f"{name}.npy", np.ascontiguousarray(test_x[scored]), allow_pickle=False)
        np.save(trusted / "labels" / f"{name}.npy", np.ascontiguousarray(test_y[scored]), allow_pickle=False)
        counts[name] = {"train": int(len(site.train.labels)), "scored": int(len(scored))}
        if spec.get("view_dir"):
            own = holdout.subset_indices(test_y, name, environ=spec["view_env"])
            arrays = {
                "train_features": np.asarray(site.train.features),
                "train_labels": np.asarray(site.train.labels),
                "eval_features": test_x[own],
                "eval_labels": test_y[own],
            }
            views.write_view(Path(spec["view_dir"]) / name, arrays)
            counts[name]["view_eval"] = int(len(own))
    return counts


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
