"""Server-side aggregators over client DIFF updates (NVFlare ``ModelAggregator``).

Every client sends ``FLModel(params_type=DIFF, meta={"NUM_STEPS_CURRENT_ROUND": n})``.
The aggregators below turn one round of such updates into a single DIFF that NVFlare's
FedAvg controller adds to the global model. Weighted ones weight a client by the local
optimisation steps it reports, so a client that trained longer counts more; the
``sample_weighted`` one weights it by its number of training samples, which clients send as
``meta["NUM_TRAIN_SAMPLES"]`` (FLamby's FedAvg, ``flamby/strategies/fed_avg.py``).

State that must live across rounds (server momentum, Adam moments, SCAFFOLD controls) is
kept on the aggregator instance; ``reset_stats`` clears only the per-round accumulators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from nvflare.apis.fl_constant import FLMetaKey
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.aggregators.model_aggregator import ModelAggregator
from nvflare.app_common.app_constant import AlgorithmConstants

SCAFFOLD_CTRL_DIFF = AlgorithmConstants.SCAFFOLD_CTRL_DIFF
SCAFFOLD_CTRL_GLOBAL = AlgorithmConstants.SCAFFOLD_CTRL_GLOBAL
NUM_TRAIN_SAMPLES = "NUM_TRAIN_SAMPLES"
AGGREGATOR_CHOICES = ("weighted", "sample_weighted", "fedavgm", "fedadam", "median", "scaffold")


def as_array(value: Any) -> np.ndarray:
    """A float64 numpy view of a tensor or array (torch tensors are detached to the CPU)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _like(value: np.ndarray, reference: Any) -> Any:
    """Cast ``value`` back to the dtype (and for torch, the type) the client sent."""
    if hasattr(reference, "detach"):
        import torch

        return torch.as_tensor(value, dtype=reference.dtype)
    return np.asarray(value, dtype=np.asarray(reference).dtype)


def meta_weight(model: FLModel, key: str) -> float:
    """The non-negative, finite number a client put in ``meta[key]``."""
    weight = (model.meta or {}).get(key)
    if weight is None:
        raise ValueError(f"client update has no {key} in its meta")
    weight = float(weight)
    if weight < 0 or not np.isfinite(weight):
        raise ValueError(f"{key} must be a finite number >= 0, got {weight}")
    return weight


def step_weight(model: FLModel) -> float:
    return meta_weight(model, FLMetaKey.NUM_STEPS_CURRENT_ROUND)


def _require_diff(model: FLModel) -> None:
    if model.params_type != ParamsType.DIFF:
        raise ValueError(f"aggregators here take DIFF updates, got params_type={model.params_type}")


class MetricMean:
    """Weighted mean of the numeric metrics clients report with their updates (for telemetry)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._weights: dict[str, float] = {}

    def add(self, metrics: dict | None, weight: float) -> None:
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                self._sums[key] = self._sums.get(key, 0.0) + float(value) * weight
                self._weights[key] = self._weights.get(key, 0.0) + weight

    def mean(self) -> dict[str, float]:
        return {
            key: total / self._weights[key] for key, total in self._sums.items() if self._weights[key] > 0
        }


class WeightedAggregator(ModelAggregator):
    """FedAvg: the step-weighted mean of the client DIFFs."""

    def __init__(self) -> None:
        super().__init__()
        self.reset_stats()

    def reset_stats(self) -> None:
        self._sums: dict[str, np.ndarray] = {}
        self._refs: dict[str, Any] = {}
        self._total = 0.0
        self._metrics = MetricMean()

    def weight(self, model: FLModel) -> float:
        return step_weight(model)

    def accept_model(self, model: FLModel) -> None:
        _require_diff(model)
        weight = self.weight(model)
        self._metrics.add(model.metrics, weight)
        for key, value in model.params.items():
            self._refs.setdefault(key, value)
            contribution = as_array(value) * weight
            if key in self._sums:
                self._sums[key] += contribution
            else:
                self._sums[key] = contribution
        self._total += weight

    def mean_diff(self) -> dict[str, np.ndarray]:
        if self._total <= 0:
            raise ValueError("no client reported any local steps this round; nothing to aggregate")
        return {key: total / self._total for key, total in self._sums.items()}

    def aggregate_model(self) -> FLModel:
        return self._diff_model(self.mean_diff())

    def _diff_model(self, update: dict[str, np.ndarray], meta: dict | None = None) -> FLModel:
        params = {key: _like(value, self._refs[key]) for key, value in update.items()}
        return FLModel(
            params=params, params_type=ParamsType.DIFF, metrics=self._metrics.mean(), meta=meta or {}
        )


class SampleWeightedAggregator(WeightedAggregator):
    """FedAvg as FLamby runs it: the mean DIFF weighted by each client's training-sample count."""

    def weight(self, model: FLModel) -> float:
        step_weight(model)  # the step count stays part of every update's contract
        return meta_weight(model, NUM_TRAIN_SAMPLES)


class FedAvgMAggregator(WeightedAggregator):
    """FedAvgM (Hsu et al. 2019): server SGD with momentum on the mean DIFF.

    ``v <- momentum * v + mean_diff``; the global model moves by ``server_lr * v``.
    """

    def __init__(self, server_lr: float = 1.0, server_momentum: float = 0.9) -> None:
        if server_lr <= 0:
            raise ValueError("server_lr must be > 0")
        if not 0 <= server_momentum < 1:
            raise ValueError("server_momentum must be in [0, 1)")
        self.server_lr = server_lr
        self.server_momentum = server_momentum
        self.velocity: dict[str, np.ndarray] = {}
        super().__init__()

    def aggregate_model(self) -> FLModel:
        update = {}
        for key, diff in self.mean_diff().items():
            velocity = self.server_momentum * self.velocity.get(key, 0.0) + diff
            self.velocity[key] = velocity
            update[key] = self.server_lr * velocity
        return self._diff_model(update)


class FedAdamAggregator(WeightedAggregator):
    """FedAdam (Reddi et al. 2021, FedOpt) with bias correction on the mean DIFF.

    The mean DIFF plays the role of a negative gradient: ``m`` and ``v`` are Adam's moments
    of it, and the server step is ``server_lr * m_hat / (sqrt(v_hat) + tau)``.
    """

    def __init__(
        self, server_lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        if server_lr <= 0:
            raise ValueError("server_lr must be > 0")
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if tau <= 0:
            raise ValueError("tau must be > 0")
        self.server_lr = server_lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau
        self.first: dict[str, np.ndarray] = {}
        self.second: dict[str, np.ndarray] = {}
        self.steps = 0
        super().__init__()

    def aggregate_model(self) -> FLModel:
        self.steps += 1
        first_correction = 1 - self.beta1**self.steps
        second_correction = 1 - self.beta2**self.steps
        update = {}
        for key, diff in self.mean_diff().items():
            first = self.beta1 * self.first.get(key, 0.0) + (1 - self.beta1) * diff
            second = self.beta2 * self.second.get(key, 0.0) + (1 - self.beta2) * diff**2
            self.first[key], self.second[key] = first, second
            first_hat = first / first_correction
            second_hat = second / second_correction
            update[key] = self.server_lr * first_hat / (np.sqrt(second_hat) + self.tau)
        return self._diff_model(update)


class MedianAggregator(ModelAggregator):
    """Coordinate-wise median of the client DIFFs, unweighted (Yin et al. 2018)."""

    def __init__(self) -> None:
        super().__init__()
        self.reset_stats()

    def reset_stats(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._metrics = MetricMean()

    def accept_model(self, model: FLModel) -> None:
        _require_diff(model)
        self._updates.append(dict(model.params))
        self._metrics.add(model.metrics, 1.0)

    def aggregate_model(self) -> FLModel:
        if not self._updates:
            raise ValueError("no client updates arrived this round; nothing to aggregate")
        first = self._updates[0]
        params = {}
        for key, reference in first.items():
            stacked = np.stack([as_array(update[key]) for update in self._updates])
            params[key] = _like(np.median(stacked, axis=0), reference)
        return FLModel(params=params, params_type=ParamsType.DIFF, metrics=self._metrics.mean(), meta={})


class ScaffoldAggregator(WeightedAggregator):
    """SCAFFOLD (Karimireddy et al. 2020) server side.

    Clients put their control-variate change ``c_i+ - c_i`` in
    ``meta[SCAFFOLD_CTRL_DIFF]``; the server keeps the global control ``c`` and moves it by
    the step-weighted mean of those changes (every client takes part each round here, so
    the |S|/N factor of the paper is 1). The new ``c`` travels to the clients in
    ``meta[SCAFFOLD_CTRL_GLOBAL]`` of the aggregated model, which NVFlare's FedAvg
    controller copies onto the next round's global model.
    """

    def __init__(self) -> None:
        self.global_controls: dict[str, np.ndarray] = {}
        super().__init__()

    def reset_stats(self) -> None:
        super().reset_stats()
        self._control_sums: dict[str, np.ndarray] = {}

    def accept_model(self, model: FLModel) -> None:
        control_diff = (model.meta or {}).get(SCAFFOLD_CTRL_DIFF)
        if not control_diff:
            raise ValueError(f"SCAFFOLD needs meta['{SCAFFOLD_CTRL_DIFF}'] from every client")
        super().accept_model(model)
        weight = step_weight(model)
        for key, value in control_diff.items():
            contribution = as_array(value) * weight
            if key in self._control_sums:
                self._control_sums[key] += contribution
            else:
                self._control_sums[key] = contribution

    def aggregate_model(self) -> FLModel:
        diff = self.mean_diff()
        for key, total in self._control_sums.items():
            self.global_controls[key] = self.global_controls.get(key, 0.0) + total / self._total
        # Plain nested lists: NVFlare saves this meta with the global model and reloads it with
        # torch.load(weights_only=True), which refuses numpy arrays, and tensors in meta do not
        # reach in-process clients. Lists survive both.
        controls = {key: value.astype(np.float32).tolist() for key, value in self.global_controls.items()}
        return self._diff_model(diff, meta={SCAFFOLD_CTRL_GLOBAL: controls})


def build_aggregator(
    name: str,
    server_lr: float = 1.0,
    server_momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> ModelAggregator:
    """The aggregator a job's ``--aggregator`` flag names."""
    if name == "weighted":
        return WeightedAggregator()
    if name == "sample_weighted":
        return SampleWeightedAggregator()
    if name == "fedavgm":
        return FedAvgMAggregator(server_lr=server_lr, server_momentum=server_momentum)
    if name == "fedadam":
        return FedAdamAggregator(server_lr=server_lr, beta1=beta1, beta2=beta2, tau=tau)
    if name == "median":
        return MedianAggregator()
    if name == "scaffold":
        return ScaffoldAggregator()
    raise ValueError(f"unknown aggregator {name!r}; choose one of {', '.join(AGGREGATOR_CHOICES)}")
