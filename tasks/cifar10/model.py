"""Registered CNNs for CIFAR-10 (3x32x32 images -> 10 logits), all under the 5M-parameter cap.

A candidate may add an architecture here; the job refuses any over the profile's
``max_model_params``. ``moderate_cnn`` is the reference workflow's baseline shape (six 3x3
convolutions in three pooled stages, a 512-512 head, light dropout; about 3.5M parameters);
``moderate_cnn_gn`` adds GroupNorm (no running statistics, so nothing in the state dict
besides weights); ``small_cnn`` is a 0.1M-parameter net for quick runs on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10
DEFAULT_ARCH = "moderate_cnn"


def _conv(cin: int, cout: int, groups: int = 0) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, padding=1)]
    if groups:
        layers.append(nn.GroupNorm(groups, cout))
    return [*layers, nn.ReLU(inplace=True)]


def _moderate(group_norm: bool = False, head: int = 512) -> nn.Module:
    g = (lambda c: max(1, c // 8)) if group_norm else (lambda c: 0)
    return nn.Sequential(
        *_conv(3, 32, g(32)), *_conv(32, 64, g(64)), nn.MaxPool2d(2),
        *_conv(64, 128, g(128)), *_conv(128, 128, g(128)), nn.MaxPool2d(2), nn.Dropout2d(0.05),
        *_conv(128, 256, g(256)), *_conv(256, 256, g(256)), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.1),
        nn.Linear(256 * 4 * 4, head), nn.ReLU(inplace=True),
        nn.Linear(head, head), nn.ReLU(inplace=True), nn.Dropout(0.1),
        nn.Linear(head, NUM_CLASSES),
    )  # fmt: skip


def _small() -> nn.Module:
    return nn.Sequential(
        *_conv(3, 16), nn.MaxPool2d(2), *_conv(16, 32), nn.MaxPool2d(2), *_conv(32, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.ReLU(inplace=True), nn.Linear(64, NUM_CLASSES),
    )  # fmt: skip


ARCHITECTURES = {
    "moderate_cnn": lambda: _moderate(),
    "moderate_cnn_gn": lambda: _moderate(group_norm=True),
    "moderate_cnn_small_head": lambda: _moderate(head=256),
    "small_cnn": _small,
}


class CifarNet(nn.Module):
    """One registered architecture, named by ``arch``; outputs 10 logits per image."""

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


def build_model(arch: str = DEFAULT_ARCH, max_params: int = 0, seed: int = 0) -> CifarNet:
    """The named architecture, initialised from ``seed``; refused over ``max_params`` (0: no cap)."""
    model = CifarNet(arch, init_seed=seed)
    params = count_parameters(model)
    if max_params and params > max_params:
        raise ValueError(f"architecture {arch!r} has {params} parameters, over the cap of {max_params}")
    return model
