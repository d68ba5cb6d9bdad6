"""The engine-side data export: a pinned bridge from the base commit, scored split and job views."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.guard.validate import protected_hashes
from engine.profile import load_profile
from engine.run.databridge import export_site_data, package_inits, pin_bridge
from engine.run.runner import evaluation_environment
from engine.store.gitsafe import run_git

ROOT = Path(__file__).resolve().parents[1]
SITES = ["site-1", "site-2", "site-3", "site-4"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bridge") / "workspace"
    root.mkdir()
    shutil.copytree(ROOT / "tasks", root / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "profiles", root / "profiles")
    shutil.copy(ROOT / "program.md", root / "program.md")  # a profile's context must exist
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "base")
    return root


@pytest.fixture(scope="module")
def exported(workspace, tmp_path_factory):
    profile = load_profile(workspace, "fed_heart_disease")
    hashes = protected_hashes(workspace, profile)
    # A candidate rewrites the worktree's bridge after the campaign started: the pin ignores it.
    (workspace / "tasks" / "fed_heart_disease" / "data.py").write_text("raise SystemExit('tampered')\n")
    out = tmp_path_factory.mktemp("export")
    bridge = pin_bridge(workspace, "HEAD", hashes, out / "bridge")
    validation = evaluation_environment(profile, "validation")
    heldout = evaluation_environment(profile, "heldout")
    data = export_site_data(
        bridge, profile.task_dir, SITES, 4, out / "trusted", validation, out / "views", validation
    )
    held = export_site_data(bridge, profile.task_dir, SITES, 4, out / "trusted-heldout", heldout)
    run_git(workspace, "checkout", "--", ".")
    return profile, hashes, data, held


def test_package_inits_cover_every_level():
    assert package_inits(["tasks/shared/holdout.py", "tasks/fed_heart_disease/data.py"]) == [
        "tasks/__init__.py",
        "tasks/fed_heart_disease/__init__.py",
        "tasks/shared/__init__.py",
    ]


def test_the_pin_comes_from_the_commit_and_is_verified(workspace, exported, tmp_path):
    profile, hashes, *_ = exported
    assert "tasks/shared/views.py" in hashes and "tasks/fed_heart_disease/data.py" in hashes
    forged = dict(hashes, **{"tasks/shared/holdout.py": "0" * 64})
    with pytest.raises(ValueError, match="tasks/shared/holdout.py .* differs from the pinned hash"):
        pin_bridge(workspace, "HEAD", forged, tmp_path / "bridge")
    with pytest.raises(ValueError, match="is not in commit"):
        pin_bridge(workspace, "HEAD", {"tasks/nothing.py": "0" * 64}, tmp_path / "bridge2")


def test_scored_split_inputs_hold_features_only(exported):
    _, _, data, _ = exported
    for site in SITES:
        inputs = np.load(data.inputs_dir() / f"{site}.npy")
        labels = data.labels(site)
        assert inputs.shape == (data.counts[site]["scored"], 13)
        assert labels.shape == (len(inputs),) and set(np.unique(labels)) <= {0.0, 1.0}
    assert sorted(p.name for p in data.trusted_dir.iterdir()) == ["inputs", "labels"]


def test_views_carry_training_and_validation_rows_never_heldout(exported):
    profile, _, data, held = exported
    from tasks.fed_heart_disease.data import load_federation
    from tasks.shared.holdout import heldout_mask

    for site in load_federation():
        folder = data.view_dir / site.name
        mask = heldout_mask(site.test.labels, profile.heldout.fraction, profile.heldout.seed, site.name)
        assert np.array_equal(np.load(folder / "train_features.npy"), site.train.features)
        assert np.array_equal(np.load(folder / "eval_features.npy"), site.test.features[~mask])
        assert np.array_equal(np.load(folder / "eval_labels.npy"), site.test.labels[~mask])
        assert np.array_equal(np.load(held.inputs_dir() / f"{site.name}.npy"), site.test.features[mask])
        assert np.array_equal(held.labels(site.name), site.test.labels[mask])
        assert held.view_dir is None
