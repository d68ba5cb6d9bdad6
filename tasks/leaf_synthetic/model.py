"""Registered model architectures for LEAF Synthetic (60 features -> 5 class logits).

A candidate may add an architecture here; the job refuses any over the profile's parameter
cap. ``logreg`` is the baseline: multinomial logistic regression.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_FEATURES = 60
NUM_CLASSES = 5
DEFAULT_ARCH = "logreg"


def _logreg() -> nn.Module:
    return nn.Linear(NUM_FEATURES, NUM_CLASSES)


def _mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES))


ARCHITECTURES = {
    "logreg": _logreg,
    "mlp64": lambda: _mlp(64),
    "mlp128": lambda: _mlp(128),
}


class SyntheticNet(nn.Module):
    """One registered architecture, named by ``arch``; outputs class logits."""

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
        return self.net(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(arch: str = DEFAULT_ARCH, max_params: int = 0, seed: int = 0) -> SyntheticNet:
    """The named architecture, initialised from ``seed``; refused over ``max_params`` (0: no cap)."""
    model = SyntheticNet(arch, init_seed=seed)
    params = count_parameters(model)
    if max_params and params > max_params:
        raise ValueError(f"architecture {arch!r} has {params} parameters, over the cap of {max_params}")
    return model
