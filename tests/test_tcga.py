"""Fed-TCGA-BRCA: FLamby's regions and split, the Cox loss, the C-index, and one real NVFlare job."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.profile import load_profile
from engine.run.runner import run_job_retrying_stalls
from tasks.fed_tcga_brca import data as tcga
from tasks.fed_tcga_brca.model import build_model, count_parameters, cox_loss
from tasks.shared.evaluation import concordance_index
from tasks.shared.holdout import subset_environment

FLAMBY_SIZES = [(248, 63), (156, 40), (164, 42), (129, 33), (129, 33), (40, 11)]


def test_afr_data_gives_flambys_region_sizes(root):
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "data", "fed_tcga_brca", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [(c["train"], c["test"]) for c in summary["clients"]] == FLAMBY_SIZES
    assert [c["client"] for c in summary["clients"]] == [f"site-{i}" for i in range(1, 7)]
    assert summary["total_samples"] == 1088
    # Censored / observed counts: every region's test split has at least one observed death.
    assert all(c["test_classes"]["1"] >= 1 for c in summary["clients"])


def test_regions_are_disjoint_and_features_are_flambys_39_columns():
    sites = tcga.load_federation()
    for site in sites:
        for split in (site.train, site.test):
            assert split.features.shape == (len(split), 39) and split.features.dtype == np.float32
            assert set(np.unique(split.events)) <= {0.0, 1.0}
            assert (split.times >= 0).all()
    # Age is column 0 and unscaled, as FLamby feeds it.
    assert 20 < sites[0].train.features[:, 0].mean() < 80


def test_refuses_modified_data(tmp_path, monkeypatch):
    for path in tcga.DATA_DIR.iterdir():
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / "train_test_split.csv"
    target.write_text(target.read_text().replace("train_0", "test_0", 1))
    monkeypatch.setattr(tcga, "DATA_DIR", tmp_path)
    tcga.load_federation.cache_clear()
    try:
        with pytest.raises(ValueError, match="train_test_split.csv: SHA-256"):
            tcga.load_federation()
    finally:
        monkeypatch.undo()
        tcga.load_federation.cache_clear()


def test_validation_and_heldout_halves_partition_each_test_split():
    for number in range(1, 7):
        name = f"site-{number}"
        full = tcga.load_site(name, subset_environment("full", 0, 0)).test
        halves = [
            tcga.load_site(name, subset_environment(s, 0.5, 20260)).test for s in ("validation", "heldout")
        ]
        assert sum(len(h) for h in halves) == len(full)
        rows = lambda split: {(float(t), tuple(x)) for t, x in zip(split.times, split.features, strict=True)}  # noqa: E731
        assert rows(halves[0]) | rows(halves[1]) == rows(full)
        assert sum(h.events.sum() for h in halves) == full.events.sum()


def test_concordance_index_against_a_hand_computed_case():
    times = [2.0, 4.0, 6.0, 8.0]
    events = [1, 0, 1, 1]
    risks = [0.9, 0.95, 0.7, 0.7]
    # Comparable pairs (the earlier time is an observed death): (0,1) (0,2) (0,3) (2,3).
    # (0,1): 0.9 < 0.95, discordant; (0,2), (0,3): concordant; (2,3): tied risk, one half.
    assert concordance_index(times, risks, events) == pytest.approx(2.5 / 4)
    assert concordance_index(times, [-r for r in risks], events) == pytest.approx(1.5 / 4)
    # No observed death: no comparable pair, chance for every model; a diverged model too.
    assert concordance_index(times, risks, [0, 0, 0, 0]) == 0.5
    assert concordance_index(times, [math.nan, 1.0, 2.0, 3.0], events) == 0.5


def test_cox_loss_is_the_mean_negative_partial_log_likelihood():
    a, b, c = 0.3, -0.2, 0.5
    risks = torch.tensor([a, b, c])
    # Rows by time: row 0 (t=1, death), row 1 (t=2, censored), row 2 (t=3, death).
    truth = torch.tensor([[1.0, 1.0], [0.0, 2.0], [1.0, 3.0]])
    # Risk sets: row 0 -> {0, 1, 2}; row 2 -> {2}; the censored row adds no term.
    expected = -((a - math.log(math.exp(a) + math.exp(b) + math.exp(c))) + (c - c)) / 3
    assert float(cox_loss(risks, truth)) == pytest.approx(expected, rel=1e-6)
    # Order of the rows does not matter; the loss has a gradient that lowers the first death's rank.
    shuffled = torch.tensor([2, 0, 1])
    assert float(cox_loss(risks[shuffled], truth[shuffled])) == pytest.approx(expected, rel=1e-6)
    leaf = risks.clone().requires_grad_(True)
    cox_loss(leaf, truth).backward()
    assert leaf.grad[0] < 0  # raising the risk of the earliest death lowers the loss


def test_models_are_registered_under_the_cap():
    assert count_parameters(build_model("cox_linear")) == 40
    with pytest.raises(ValueError, match="over the cap of 100"):
        build_model("mlp16", max_params=100)


@pytest.fixture(scope="module")
def smoke_run(root, tmp_path_factory):
    profile = load_profile(root, "fed_tcga_brca")
    return run_job_retrying_stalls(root, profile, {}, tmp_path_factory.mktemp("tcga"), smoke=True)


@pytest.mark.nvflare
def test_smoke_job_scores_the_c_index_of_every_region(smoke_run):
    assert smoke_run.status == "ok", f"{smoke_run.error}\n" + "\n".join(smoke_run.log_tail[-20:])
    assert len(smoke_run.per_site) == 6
    assert all(0.0 <= v <= 1.0 for v in smoke_run.per_site.values())
    assert smoke_run.score == pytest.approx(sum(smoke_run.per_site.values()) / 6)
    log = Path(smoke_run.log_path).read_text()
    # A lean run returns once the result is complete (no job_result.json): the command line says the metric.
    assert "--metric c_index --metric_direction maximize" in log.splitlines()[0]
    assert "round 0: global_c_index=" in log
