"""Client-side helpers every task's ``client.py`` uses: seeding, devices, batching, model diffs, SCAFFOLD."""

from __future__ import annotations

import os
import random
import re
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

SCAFFOLD_CTRL_DIFF = "scaffold_c_diff"
SCAFFOLD_CTRL_GLOBAL = "scaffold_c_global"
# The client's training-sample count, sent in every update's meta for sample-weighted FedAvg.
NUM_TRAIN_SAMPLES = "NUM_TRAIN_SAMPLES"


def site_index(site_name: str) -> int:
    """1 for ``site-1`` and so on; NVFlare names simulated clients ``site-N``."""
    match = re.fullmatch(r"site-(\d+)", site_name or "")
    if not match:
        raise ValueError(f"client name {site_name!r} is not of the form site-N")
    return int(match.group(1))


def site_seed(base_seed: int, site_name: str) -> int:
    """A distinct, reproducible seed per client: base seed + (N - 1) for ``site-N``."""
    return base_seed + site_index(site_name) - 1


def seed_everything(seed: int) -> None:
    # cuBLAS is deterministic only with a fixed workspace; set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    deterministic_algorithms()
    torch.backends.cudnn.benchmark = False


def deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without the import of torch's
    compiler (``torch._inductor``) that call makes only to set the compiler's own flag: no task
    compiles its model, and that import costs each site process about a second and a half of CPU
    per candidate. The flag every torch op reads is the same one."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available here (use auto or cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def batches(
    features: torch.Tensor, labels: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches: a new permutation each pass over the data."""
    count = len(labels)
    if count == 0:
        raise ValueError("this client has no training samples")
    while True:
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            yield features[index], labels[index]


def state_from_params(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The received global parameters as CPU tensors, ready for ``load_state_dict``."""
    return {
        key: torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
        for key, value in params.items()
    }


def compute_model_diff(model: nn.Module, global_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Local minus global weights for every state-dict entry, as CPU tensors (the DIFF).

    Tensors, not numpy arrays: NVFlare's PyTorch client API converts tensors for the
    server and drops values of other types.
    """
    local_state = model.state_dict()
    missing = set(global_state) ^ set(local_state)
    if missing:
        raise ValueError(f"local and global models disagree on parameters: {sorted(missing)}")
    return {key: local_state[key].detach().cpu() - global_state[key].detach().cpu() for key in global_state}


class ScaffoldState:
    """SCAFFOLD client controls (Karimireddy et al. 2020, option II).

    After each optimiser step the weights get ``-lr * (c - c_i)``; after local training
    ``c_i+ = c_i - c + (global - local) / (steps * lr)`` and ``c_i+ - c_i`` goes to the server.
    """

    def __init__(self, model: nn.Module) -> None:
        self.local = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        self.server = {name: torch.zeros_like(p) for name, p in model.named_parameters()}

    def receive(self, meta: dict | None) -> None:
        controls = (meta or {}).get(SCAFFOLD_CTRL_GLOBAL) or {}
        for name, value in controls.items():
            if name not in self.server:
                raise ValueError(f"SCAFFOLD control for unknown parameter {name!r}")
            value = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))
            self.server[name] = value.to(device=self.server[name].device, dtype=self.server[name].dtype)

    def server_norm(self) -> float:
        """L2 norm of the server control received last (0 before the first aggregation)."""
        return float(sum(float(c.pow(2).sum()) for c in self.server.values()) ** 0.5)

    @torch.no_grad()
    def correct(self, model: nn.Module, lr: float) -> None:
        for name, param in model.named_parameters():
            param.sub_(lr * (self.server[name] - self.local[name]))

    @torch.no_grad()
    def update(
        self, model: nn.Module, global_state: dict[str, torch.Tensor], steps: int, lr: float
    ) -> dict[str, np.ndarray]:
        if steps <= 0 or lr <= 0:
            raise ValueError("SCAFFOLD needs at least one local step and a positive learning rate")
        local_state = dict(model.named_parameters())
        diff = {}
        for name, old in self.local.items():
            local = local_state[name].detach()
            new = old - self.server[name] + (global_state[name].to(local.device) - local) / (steps * lr)
            diff[name] = (new - old).cpu().numpy()
            self.local[name] = new
        return diff


def make_optimizer(
    name: str, params, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose adam or sgd")


def local_train(
    model: nn.Module,
    global_model: nn.Module,
    data: Iterator[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    optimizer: torch.optim.Optimizer,
    loss_fn,
    fedprox_mu: float = 0.0,
    scaffold: ScaffoldState | None = None,
    device: torch.device | None = None,
    amp: bool = False,
) -> float:
    """``steps`` optimiser updates; FedProx adds (mu/2)||w - w_global||^2. Returns the mean loss.

    With ``device`` each batch moves there first; ``amp`` runs the forward pass and loss in
    bfloat16 autocast (no loss scaling needed, unlike float16).
    """
    proximal = None
    if fedprox_mu > 0:  # imported only when used: every site process pays for its imports
        from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss

        proximal = PTFedProxLoss(mu=fedprox_mu)
    model.train()
    total = 0.0
    for _ in range(steps):
        features, labels = next(data)
        if device is not None:
            features = features.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        device_type = (device or features.device).type
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(features), labels)
        if proximal is not None:
            loss = loss + proximal(model, global_model)
        loss.backward()
        optimizer.step()
        if scaffold is not None:
            scaffold.correct(model, optimizer.param_groups[0]["lr"])
        total += float(loss.detach().float())
    return total / max(steps, 1)
