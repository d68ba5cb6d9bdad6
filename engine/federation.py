"""``afr data``: the federation a profile trains on, as its task's data bridge describes it."""

from __future__ import annotations

from pathlib import Path

from engine.profile import ProfileError, load_profile
from engine.store.bundle import import_root


def federation(root: Path, profile_name: str, data_root: str | None = None) -> dict:
    """The federation a profile trains on, from the task's data bridge.

    ``describe`` gets the client count and every budget field it names as a parameter
    (a split's alpha and seed, the data folder, taken from the workspace when relative).
    """
    import importlib
    import inspect

    profile = load_profile(root, profile_name)
    import_root(root)
    if not (root / profile.task_dir / "data.py").is_file():
        raise ProfileError(f"{profile.name}: {profile.task_dir} has no data.py (data bridge) to describe")
    module = importlib.import_module(profile.task_dir.replace("/", ".") + ".data")
    fixed = dict(profile.budget.values())
    if data_root is not None:
        fixed["data_root"] = data_root
    if "data_root" in fixed:
        fixed["data_root"] = str(root / Path(str(fixed["data_root"])).expanduser())
    accepted = inspect.signature(module.describe).parameters
    clients = module.describe(
        profile.budget.n_clients, **{k: v for k, v in fixed.items() if k in accepted and k != "num_clients"}
    )
    summary = {
        "profile": profile.name,
        "clients": clients,
        "total_train": sum(c["train"] for c in clients),
        "total_test": sum(c["test"] for c in clients),
    }
    summary["total_samples"] = summary["total_train"] + summary["total_test"]
    if all("users" in c for c in clients):
        summary["users"] = sum(c["users"] for c in clients)
    return summary
