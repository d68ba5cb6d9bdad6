"""CIFAR-10: the pickle reader, the Dirichlet split and a real NVFlare job, on a tiny data set
written in the exact on-disk format of ``cifar-10-batches-py`` (offline, on the CPU)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.profile import parse_profile
from engine.run.runner import run_job_retrying_stalls
from tasks.cifar10 import data as cifar
from tasks.cifar10.model import ARCHITECTURES, build_model, count_parameters
from tasks.shared.holdout import subset_environment
from tasks.shared.training import resolve_device

PER_BATCH, TEST_SIZE = 120, 240


def write_cifar_folder(root: Path, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` as the python release has it: pickled dicts with bytes keys."""
    folder = root / cifar.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    # Each class has its own mean colour, so a model can learn something from a few images.
    colours = rng.integers(30, 225, size=(10, 3))

    def batch(label: str, count: int) -> dict:
        labels = rng.integers(0, 10, size=count)
        pixels = colours[labels][:, :, None] + rng.normal(0, 25, size=(count, 3, 1024))
        return {
            b"batch_label": label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": np.clip(pixels, 0, 255).astype(np.uint8).reshape(count, 3072),
            b"filenames": [f"img_{label}_{i}.png".encode() for i in range(count)],
        }

    for number in range(1, 6):
        with open(folder / f"data_batch_{number}", "wb") as handle:
            pickle.dump(batch(f"training batch {number} of 5", PER_BATCH), handle, protocol=2)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump(batch("testing batch 1 of 1", TEST_SIZE), handle, protocol=2)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(
            {b"label_names": names, b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}, handle, protocol=2
        )
    return folder


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar_folder(root)
    return root


def test_reader_reads_the_python_release_format(fixture_root):
    train, test = cifar.load_images(str(fixture_root))
    assert train.images.shape == (5 * PER_BATCH, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (TEST_SIZE, 3, 32, 32) and len(test.labels) == TEST_SIZE
    assert cifar.label_names(fixture_root)[:2] == ["airplane", "automobile"]
    # The folder itself works as the data root too.
    again, _ = cifar.load_images(str(fixture_root / cifar.FOLDER))
    np.testing.assert_array_equal(again.labels, train.labels)


def test_dirichlet_split_partitions_both_splits_is_skewed_and_cached(fixture_root, tmp_path, monkeypatch):
    monkeypatch.setenv("AFR_DATA_CACHE", str(tmp_path))
    cifar.site_indices.cache_clear()
    train_sites, test_sites = cifar.site_indices(str(fixture_root), 8, 0.5, 0)
    assert len(list(tmp_path.glob("cifar10_split_8sites_alpha0.5_seed0_*.npz"))) == 1
    for sites, total in ((train_sites, 5 * PER_BATCH), (test_sites, TEST_SIZE)):
        rows = np.concatenate(sites)
        assert len(rows) == total and len(np.unique(rows)) == total
    assert all(len(rows) >= 1 for rows in test_sites)
    train, _ = cifar.load_images(str(fixture_root))
    shares = np.array([np.bincount(train.labels[rows], minlength=10) / len(rows) for rows in train_sites])
    assert shares.std(axis=0).mean() > 0.05  # label skew: sites differ in class balance
    # Same inputs, same split (from the cache or recomputed); another split seed, another split.
    cifar.site_indices.cache_clear()
    again, _ = cifar.site_indices(str(fixture_root), 8, 0.5, 0)
    assert all(np.array_equal(a, b) for a, b in zip(train_sites, again, strict=True))
    other, _ = cifar.site_indices(str(fixture_root), 8, 0.5, 1)
    assert not all(np.array_equal(a, b) for a, b in zip(train_sites, other, strict=True))
    cifar.site_indices.cache_clear()


def test_site_views_are_normalised_and_halves_partition_the_test_split(fixture_root):
    site = cifar.load_site("site-3", fixture_root, 8, environ=subset_environment("full", 0, 0))
    assert site.train.features.shape[1:] == (3, 32, 32) and site.train.features.dtype == np.float32
    assert abs(float(site.train.features.mean())) < 1.5
    halves = [
        cifar.load_site("site-3", fixture_root, 8, environ=subset_environment(s, 0.5, 20260))
        for s in ("validation", "heldout")
    ]
    assert sum(len(h.test.labels) for h in halves) == len(site.test.labels)
    with pytest.raises(ValueError, match="site-1..site-8"):
        cifar.load_site("site-9", fixture_root, 8)


def test_afr_data_shows_the_dirichlet_split(root, fixture_root):
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "data", "cifar10", "--data_root", str(fixture_root), "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["clients"]) == 8
    assert summary["total_train"] == 5 * PER_BATCH and summary["total_test"] == TEST_SIZE
    assert all(c["source"] == "Dirichlet alpha=0.5" for c in summary["clients"])
    assert len({tuple(c["train_classes"].values()) for c in summary["clients"]}) == 8


def test_missing_data_is_one_line_saying_where_to_put_it(root, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "afr.cli",
            "data",
            "cifar10",
            "--data_root",
            str(tmp_path / "none"),
            "--json",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("afr: error: CIFAR-10 not found: put the python version")
    assert str(tmp_path / "none") in line and "cifar-10-batches-py" in line
    job = subprocess.run(
        [sys.executable, str(root / "tasks/cifar10/job.py"), "--data_root", str(tmp_path / "none")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 1 and job.stderr.strip().startswith("error: CIFAR-10 not found")
    assert len(job.stderr.strip().splitlines()) == 1


def test_registry_is_under_the_cap_and_devices_resolve():
    for arch in ARCHITECTURES:
        assert count_parameters(build_model(arch, 5_000_000)) <= 5_000_000
    with pytest.raises(ValueError, match="over the cap of 1000000"):
        build_model("moderate_cnn", 1_000_000)
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def smoke_run(root, fixture_root, tmp_path_factory):
    text = (root / "profiles/cifar10.toml").read_text()
    text = text.replace('data_root = "data/cifar10"', f'data_root = "{fixture_root}"')
    text = text.replace("num_workers = 2", "num_workers = 1")  # one DataLoader worker process per client
    profile = parse_profile(text)
    assert profile.budget.data_root == str(fixture_root)
    return run_job_retrying_stalls(root, profile, {}, tmp_path_factory.mktemp("cifar-run"), smoke=True)


@pytest.mark.nvflare
def test_smoke_job_trains_on_every_site_and_scores_each_test_split(smoke_run, root):
    assert smoke_run.status == "ok", f"{smoke_run.error}\n" + "\n".join(smoke_run.log_tail[-20:])
    assert sorted(smoke_run.per_site) == [f"site-{i}" for i in range(1, 9)]
    assert all(0.0 <= v <= 1.0 for v in smoke_run.per_site.values())
    assert smoke_run.score == pytest.approx(sum(smoke_run.per_site.values()) / 8)
    log = Path(smoke_run.log_path).read_text()
    assert "model moderate_cnn: 3491530 parameters" in log
    device = "cuda" if __import__("torch").cuda.is_available() else "cpu"
    assert f"device={device} amp=False workers=1" in log
    assert "round 0: global_accuracy=" in log and f"device={device}" in log
    # A lean run returns once the result is complete (no job_result.json): the command line says the metric.
    assert "--metric accuracy --metric_direction maximize" in log.splitlines()[0]
    print(f"cifar10 smoke (8 sites, 1 round, fixture) wall {smoke_run.runtime_seconds:.1f} s on {device}")
