"""The two federations are built exactly as their sources describe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.fed_heart_disease import data as heart
from tasks.leaf_synthetic import data as leaf


def test_leaf_user_sizes_match_the_leaf_paper():
    _, labels = leaf.load_users()
    sizes = np.array([len(y) for y in labels])
    assert len(sizes) == 1000
    assert sizes.sum() == 107_553
    assert round(sizes.mean(), 2) == 107.55
    assert round(sizes.std(), 2) == 213.22
    assert sizes.min() >= 5 and sizes.max() <= 1000


@pytest.mark.slow
def test_leaf_generation_is_deterministic_and_cached(tmp_path, monkeypatch):
    features, labels = leaf.generate()
    assert features[0].shape == (len(labels[0]), 60) and features[0].dtype == np.float32
    assert set(np.unique(np.concatenate(labels))) == {0, 1, 2, 3, 4}
    again_x, again_y = leaf.generate()
    np.testing.assert_array_equal(features[17], again_x[17])
    np.testing.assert_array_equal(labels[999], again_y[999])
    monkeypatch.setenv("AFR_DATA_CACHE", str(tmp_path))
    leaf.load_users.cache_clear()
    try:
        cached_x, cached_y = leaf.load_users()
        assert len(list(tmp_path.glob("*.npz"))) == 1
        np.testing.assert_array_equal(cached_x[3], features[3])
        (next(tmp_path.glob("*.npz"))).write_bytes(b"damaged")
        leaf.load_users.cache_clear()
        repaired_x, _ = leaf.load_users()  # a damaged cache is regenerated, not trusted
        np.testing.assert_array_equal(repaired_x[3], features[3])
    finally:
        leaf.load_users.cache_clear()


def test_leaf_grouping_covers_every_user_once():
    sites = [leaf.load_site(f"site-{i}", 8) for i in range(1, 9)]
    users = sorted(u for site in sites for u in site.users)
    assert users == list(range(1000))
    total = sum(len(s.train.labels) + len(s.test.labels) for s in sites)
    assert total == 107_553
    for site in sites:  # 60/40 per user, so about 60% per client
        share = len(site.train.labels) / (len(site.train.labels) + len(site.test.labels))
        assert 0.58 < share < 0.62
    with pytest.raises(ValueError, match="site-1..site-8"):
        leaf.load_site("site-9", 8)


def test_heart_sizes_match_flamby():
    sizes = [(len(s.train.labels), len(s.test.labels)) for s in heart.load_federation()]
    assert sizes == [(199, 104), (172, 89), (30, 16), (85, 45)]
    for site in heart.load_federation():
        assert site.train.features.shape[1] == 13
        assert set(np.unique(site.train.labels)) <= {0.0, 1.0}
        assert not np.isnan(site.train.features).any()


def test_heart_refuses_modified_data(tmp_path, monkeypatch):
    for path in heart.DATA_DIR.iterdir():
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / "processed.va.data"
    target.write_text(target.read_text().replace("63", "64", 1))
    monkeypatch.setattr(heart, "DATA_DIR", tmp_path)
    heart.load_federation.cache_clear()
    try:
        with pytest.raises(ValueError, match="processed.va.data: SHA-256"):
            heart.load_federation()
    finally:
        monkeypatch.undo()
        heart.load_federation.cache_clear()


def test_heart_is_standardised_per_hospital_with_its_training_statistics():
    for site in heart.load_federation():
        train, test = site.train.features, site.test.features
        # FLamby's normalize=True: (x - mean) / (std + 1e-9) with this hospital's training rows.
        np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
        std = train.std(axis=0, ddof=1)
        constant = std < 1e-6  # Switzerland's cholesterol is recorded as 0 for everyone
        np.testing.assert_allclose(std[~constant], 1.0, rtol=1e-4)
        assert (train[:, constant] == 0).all() and (test[:, constant] == 0).all()
        # The test rows use the training statistics, so they are not standardised themselves.
        assert np.abs(test.mean(axis=0)).max() > 0.01
    assert heart.load_federation()[2].hospital == "switzerland"
    assert heart.load_federation()[2].train.features.std(axis=0, ddof=1)[3] < 1e-6


def test_heart_cache_spares_site_processes_pandas_and_sklearn(tmp_path):
    """A warm cache is read with numpy alone and holds exactly what pandas and scikit-learn build."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "AFR_DATA_CACHE": str(tmp_path), "PYTHONPATH": str(root)}
    probe = (
        "import sys; from tasks.fed_heart_disease import data; site = data.load_site('site-2'); "
        "print(len(site.train.labels), 'pandas' in sys.modules, 'sklearn' in sys.modules)"
    )
    cold, warm = (
        subprocess.run(
            [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    )
    assert cold.stdout.split() == ["172", "True", "True"]
    assert warm.stdout.split() == ["172", "False", "False"]
    assert heart.federation_digest(heart.build_federation()) == heart.FEDERATION_SHA256


def test_heart_ignores_an_edited_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFR_DATA_CACHE", str(tmp_path))
    heart.load_federation.cache_clear()
    try:
        built = heart.load_federation()
        with np.load(heart.cache_path()) as stored:
            arrays = dict(stored)
        arrays["va_test_y"] = 1.0 - arrays["va_test_y"]  # flipped test labels
        np.savez(heart.cache_path(), **arrays)
        assert heart.read_cache() is None
        heart.load_federation.cache_clear()
        assert heart.federation_digest(heart.load_federation()) == heart.federation_digest(built)
    finally:
        heart.load_federation.cache_clear()
