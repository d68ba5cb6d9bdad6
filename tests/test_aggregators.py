"""Each aggregator against a numpy computation on hand-made DIFF updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType

from tasks.shared.aggregators import (
    SCAFFOLD_CTRL_DIFF,
    SCAFFOLD_CTRL_GLOBAL,
    FedAdamAggregator,
    FedAvgMAggregator,
    MedianAggregator,
    SampleWeightedAggregator,
    ScaffoldAggregator,
    WeightedAggregator,
    build_aggregator,
)

RNG = np.random.default_rng(0)
STEPS = [10.0, 30.0, 60.0]


def updates(round_index: int):
    """Three clients' DIFFs for a 2x3 weight and a bias; deterministic per round."""
    rng = np.random.default_rng(round_index)
    return [
        {"w": rng.normal(size=(2, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
        for _ in STEPS
    ]


def feed(aggregator, diffs, steps=STEPS, meta_extra=None, metrics=None):
    aggregator.reset_stats()
    for i, (diff, n) in enumerate(zip(diffs, steps, strict=True)):
        meta = {"NUM_STEPS_CURRENT_ROUND": n, **((meta_extra or [{}] * len(steps))[i])}
        aggregator.accept_model(
            FLModel(params=diff, params_type=ParamsType.DIFF, meta=meta, metrics=(metrics or [None] * 3)[i])
        )
    return aggregator.aggregate_model()


def weighted_mean(diffs, key):
    weights = np.array(STEPS) / sum(STEPS)
    return sum(w * d[key].astype(np.float64) for w, d in zip(weights, diffs, strict=True))


def test_sample_weighted_fedavg_weights_by_training_samples_not_steps():
    diffs = updates(0)
    samples = [199, 30, 85]
    result = feed(
        build_aggregator("sample_weighted"), diffs, meta_extra=[{"NUM_TRAIN_SAMPLES": n} for n in samples]
    )
    weights = np.array(samples) / sum(samples)
    for key in ("w", "b"):
        expected = sum(w * d[key].astype(np.float64) for w, d in zip(weights, diffs, strict=True))
        np.testing.assert_allclose(result.params[key], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="NUM_TRAIN_SAMPLES"):
        feed(SampleWeightedAggregator(), diffs)


def test_weighted_fedavg_is_step_weighted_mean():
    diffs = updates(0)
    result = feed(
        WeightedAggregator(), diffs, metrics=[{"accuracy": 0.5}, {"accuracy": 0.6}, {"accuracy": 0.9}]
    )
    assert result.params_type == ParamsType.DIFF
    for key in ("w", "b"):
        np.testing.assert_allclose(result.params[key], weighted_mean(diffs, key), rtol=1e-6)
        assert result.params[key].dtype == np.float32
    assert result.metrics["accuracy"] == pytest.approx((0.5 * 10 + 0.6 * 30 + 0.9 * 60) / 100)


def test_fedavgm_keeps_server_momentum_across_rounds():
    lr, beta = 0.7, 0.9
    aggregator = FedAvgMAggregator(server_lr=lr, server_momentum=beta)
    velocity = {"w": 0.0, "b": 0.0}
    for round_index in range(3):
        diffs = updates(round_index)
        result = feed(aggregator, diffs)
        for key in ("w", "b"):
            velocity[key] = beta * velocity[key] + weighted_mean(diffs, key)
            np.testing.assert_allclose(result.params[key], lr * velocity[key], rtol=1e-5)


def test_fedadam_bias_corrected_moments():
    lr, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    aggregator = FedAdamAggregator(server_lr=lr, beta1=b1, beta2=b2, tau=tau)
    m = {"w": 0.0, "b": 0.0}
    v = {"w": 0.0, "b": 0.0}
    for t in range(1, 4):
        diffs = updates(t)
        result = feed(aggregator, diffs)
        for key in ("w", "b"):
            g = weighted_mean(diffs, key)
            m[key] = b1 * m[key] + (1 - b1) * g
            v[key] = b2 * v[key] + (1 - b2) * g**2
            expected = lr * (m[key] / (1 - b1**t)) / (np.sqrt(v[key] / (1 - b2**t)) + tau)
            np.testing.assert_allclose(result.params[key], expected, rtol=1e-5)


def test_median_is_unweighted_coordinatewise():
    diffs = updates(5)
    result = feed(MedianAggregator(), diffs, steps=[1.0, 1000.0, 1.0])
    for key in ("w", "b"):
        np.testing.assert_allclose(result.params[key], np.median(np.stack([d[key] for d in diffs]), axis=0))


def test_median_ignores_one_outlier():
    diffs = updates(6)
    diffs[2] = {key: value + 1e6 for key, value in diffs[2].items()}
    result = feed(MedianAggregator(), diffs)
    assert np.abs(result.params["w"]).max() < 10


def test_scaffold_averages_diffs_and_accumulates_global_control():
    aggregator = ScaffoldAggregator()
    control = {"w": 0.0, "b": 0.0}
    for round_index in range(2):
        diffs = updates(round_index)
        controls = updates(100 + round_index)
        result = feed(aggregator, diffs, meta_extra=[{SCAFFOLD_CTRL_DIFF: c} for c in controls])
        for key in ("w", "b"):
            np.testing.assert_allclose(result.params[key], weighted_mean(diffs, key), rtol=1e-6)
            control[key] = control[key] + weighted_mean(controls, key)
            np.testing.assert_allclose(
                np.asarray(result.meta[SCAFFOLD_CTRL_GLOBAL][key]), control[key], rtol=1e-5
            )


def test_scaffold_refuses_update_without_controls():
    aggregator = ScaffoldAggregator()
    with pytest.raises(ValueError, match=SCAFFOLD_CTRL_DIFF):
        aggregator.accept_model(
            FLModel(params=updates(0)[0], params_type=ParamsType.DIFF, meta={"NUM_STEPS_CURRENT_ROUND": 1})
        )


def test_torch_tensors_come_back_as_tensors():
    diffs = [{"w": torch.ones(2, 2) * i} for i in (1.0, 2.0, 3.0)]
    result = feed(WeightedAggregator(), diffs)
    assert torch.is_tensor(result.params["w"])
    expected = (1 * 10 + 2 * 30 + 3 * 60) / 100
    assert torch.allclose(result.params["w"], torch.full((2, 2), expected))


def test_bad_updates_are_refused_with_reason():
    aggregator = WeightedAggregator()
    with pytest.raises(ValueError, match="NUM_STEPS_CURRENT_ROUND"):
        aggregator.accept_model(FLModel(params={"w": np.ones(2)}, params_type=ParamsType.DIFF, meta={}))
    with pytest.raises(ValueError, match="DIFF"):
        aggregator.accept_model(
            FLModel(
                params={"w": np.ones(2)}, params_type=ParamsType.FULL, meta={"NUM_STEPS_CURRENT_ROUND": 1}
            )
        )
    aggregator.reset_stats()
    aggregator.accept_model(
        FLModel(params={"w": np.ones(2)}, params_type=ParamsType.DIFF, meta={"NUM_STEPS_CURRENT_ROUND": 0})
    )
    with pytest.raises(ValueError, match="no client reported any local steps"):
        aggregator.aggregate_model()


def test_build_aggregator_by_name():
    assert isinstance(build_aggregator("fedadam", server_lr=0.1), FedAdamAggregator)
    with pytest.raises(ValueError, match="unknown aggregator 'krum'"):
        build_aggregator("krum")
    with pytest.raises(ValueError, match="server_momentum"):
        FedAvgMAggregator(server_momentum=1.5)
