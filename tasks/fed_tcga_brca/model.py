"""Registered models for Fed-TCGA-BRCA (39 clinical covariates -> 1 risk score) and the Cox loss.

A candidate may add an architecture here; the job refuses any over the profile's parameter
cap. ``cox_linear`` is FLamby's baseline: a linear Cox proportional-hazards model.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_FEATURES = 39
DEFAULT_ARCH = "cox_linear"

ARCHITECTURES = {
    "cox_linear": lambda: nn.Linear(NUM_FEATURES, 1),
    "mlp8": lambda: nn.Sequential(nn.Linear(NUM_FEATURES, 8), nn.ReLU(), nn.Linear(8, 1)),
    "mlp16": lambda: nn.Sequential(nn.Linear(NUM_FEATURES, 16), nn.ReLU(), nn.Linear(16, 1)),
}


class CoxNet(nn.Module):
    """One registered architecture, named by ``arch``; outputs one risk score per row."""

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


def cox_loss(risks: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood of a batch, averaged over its rows (FLamby's loss).

    ``truth`` holds (event, time) per row. Rows are put in decreasing time, so the risk set
    of a row (everyone still at risk at its time) is itself and the rows before it; a
    censored row adds no term of its own.
    """
    events, times = truth[:, 0], truth[:, 1]
    order = torch.argsort(times, descending=True, stable=True)
    risks, events = risks.reshape(-1)[order], events[order]
    shifted = risks - risks.max().detach()  # exp() stays finite; the shift cancels out
    log_risk_set = torch.logcumsumexp(shifted, dim=0)
    return -((shifted - log_risk_set) * events).mean()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(arch: str = DEFAULT_ARCH, max_params: int = 0, seed: int = 0) -> CoxNet:
    """The named architecture, initialised from ``seed``; refused over ``max_params`` (0: no cap)."""
    model = CoxNet(arch, init_seed=seed)
    params = count_parameters(model)
    if max_params and params > max_params:
        raise ValueError(f"architecture {arch!r} has {params} parameters, over the cap of {max_params}")
    return model
