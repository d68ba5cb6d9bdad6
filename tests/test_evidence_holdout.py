"""The validation / held-out split of each client's evaluation data (tasks/shared/holdout.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.profile import load_profile
from engine.run.runner import evaluation_environment
from tasks.shared import holdout

ROOT = Path(__file__).resolve().parents[1]


def test_subsets_are_complementary_deterministic_and_stratified():
    labels = np.array([0] * 40 + [1] * 20)
    env = holdout.subset_environment("validation", 0.5, 7)
    validation = holdout.subset_indices(labels, "site-1", env)
    heldout = holdout.subset_indices(labels, "site-1", {**env, holdout.SUBSET_VAR: "heldout"})
    assert sorted(np.concatenate([validation, heldout])) == list(range(60))
    assert not set(validation) & set(heldout)
    assert (labels[heldout] == 1).sum() == 10 and (labels[heldout] == 0).sum() == 20
    assert list(holdout.subset_indices(labels, "site-1", env)) == list(validation)
    other_site = holdout.subset_indices(labels, "site-2", env)
    other_seed = holdout.subset_indices(labels, "site-1", holdout.subset_environment("validation", 0.5, 8))
    assert list(other_site) != list(validation) and list(other_seed) != list(validation)


def test_no_variables_means_the_whole_split():
    assert list(holdout.subset_indices(np.array([1, 0, 1]), "site-1", {})) == [0, 1, 2]


def test_both_subsets_keep_a_row_even_for_tiny_clients():
    for labels in (np.array([1, 1]), np.array([0, 1]), np.array([1, 1, 1])):
        mask = holdout.heldout_mask(labels, 0.5, 1, "site-3")
        assert mask.any() and not mask.all()


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="one of"):
        holdout.subset_indices(np.array([0, 1]), "site-1", {holdout.SUBSET_VAR: "test"})
    with pytest.raises(ValueError, match="needs"):
        holdout.subset_indices(np.array([0, 1]), "site-1", {holdout.SUBSET_VAR: "heldout"})
    with pytest.raises(ValueError, match="between 0 and 1"):
        holdout.heldout_mask(np.array([0, 1]), 1.0, 1, "site-1")


def test_the_engine_sets_exactly_what_the_protected_module_reads():
    profile = load_profile(ROOT, "fed_heart_disease")
    for subset in ("validation", "heldout"):
        engine_env = evaluation_environment(profile, subset)
        assert engine_env == holdout.subset_environment(
            subset, profile.heldout.fraction, profile.heldout.seed
        )
    without = profile.model_copy(update={"heldout": None})
    assert evaluation_environment(without, "validation") == {holdout.SUBSET_VAR: "full"}
    with pytest.raises(ValueError, match="no \\[heldout\\]"):
        evaluation_environment(without, "heldout")


@pytest.mark.parametrize("name", ["fed_heart_disease", "leaf_synthetic"])
def test_bundled_profiles_declare_and_protect_a_heldout_subset(name):
    profile = load_profile(ROOT, name)
    assert profile.heldout is not None and 0 < profile.heldout.fraction < 1
    assert "tasks/shared/holdout.py" in profile.surface.protected


def test_heart_bridge_scores_on_the_requested_half(monkeypatch):
    from tasks.fed_heart_disease import data

    profile = load_profile(ROOT, "fed_heart_disease")
    sizes = {}
    for subset in ("validation", "heldout", "full"):
        for key, value in evaluation_environment(profile, subset).items():
            monkeypatch.setenv(key, value)
        sizes[subset] = [len(data.load_site(f"site-{i}").test.labels) for i in range(1, 5)]
    assert [v + h for v, h in zip(sizes["validation"], sizes["heldout"], strict=True)] == sizes["full"]
    assert all(v > 0 for v in sizes["validation"] + sizes["heldout"])
