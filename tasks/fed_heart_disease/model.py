"""Registered model architectures for Fed-Heart-Disease (13 raw features -> 1 logit).

A candidate may add an architecture here; the job refuses any over the profile's parameter
cap. ``logreg`` is FLamby's baseline: logistic regression (its sigmoid lives in the loss).
"""

from __future__ import annotations

import torch
from torch import nn

NUM_FEATURES = 13
DEFAULT_ARCH = "logreg"


def _logreg() -> nn.Module:
    return nn.Linear(NUM_FEATURES, 1)


def _mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1))


ARCHITECTURES = {
    "logreg": _logreg,
    "mlp16": lambda: _mlp(16),
    "mlp32": lambda: _mlp(32),
}


class HeartNet(nn.Module):
    """One registered architecture, named by ``arch``; outputs one logit per row."""

    def __init__(self, arch: str = DEFAULT_ARCH, init_seed: int = 0) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; registered: {', '.join(ARCHITECTURES)}")
        self.arch = arch
        # NVFlare rebuilds the server's model from (arch, init_seed) in its own process, so
        # the initial weights must follow from these arguments alone.
        self.init_seed = init_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.net = ARCHITECTURES[arch]()

    def forward(self, x):
        return self.net(x).squeeze(-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(arch: str = DEFAULT_ARCH, max_params: int = 0, seed: int = 0) -> HeartNet:
    """The named architecture, initialised from ``seed``; refused over ``max_params`` (0: no cap)."""
    model = HeartNet(arch, init_seed=seed)
    params = count_parameters(model)
    if max_params and params > max_params:
        raise ValueError(f"architecture {arch!r} has {params} parameters, over the cap of {max_params}")
    return model
