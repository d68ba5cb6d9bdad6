"""Offline code mechanisms: a bundled library of small, anchored patches to a task's editable files.

Why here and not under ``tasks/``: the patches are proposer knowledge (like the literature
bibliography), not task code; kept in the engine they never land in a workspace's editable
surface, and one patch serves every task whose files have the anchor it edits. Each patch
rewrites the file as it is at the candidate's parent commit, so it composes with what the
campaign already kept. A patch returns the full new text of the file: it travels as
``CandidateSpec.edits``, the same path as an agent's edits, and the same guard validates it
(surface, compile, Client API contract, registered architecture under the parameter cap).

The scripted proposer never uses them (it is the study's scalar-HPO control); ``tpe`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.store.workspace import safe_repo


class PatchError(ValueError):
    """A patch whose anchor is not in the file (the file changed too much); one line."""


@dataclass(frozen=True)
class Mechanism:
    name: str
    kind: str  # "architecture" (registers ``name`` in model.py) or "training" (shared training code)
    file: str  # "model.py" in the task folder, or a path under tasks/shared/
    summary: str
    patch: Callable[[str], str]  # file text -> patched text; PatchError when it does not apply
    marker: str  # present in a file that already has it
    args: dict[str, Scalar]  # the args that switch it on


def _replace_once(text: str, anchor: str, new: str) -> str:
    if text.count(anchor) != 1:
        raise PatchError(f"anchor {anchor.strip()[:40]!r} found {text.count(anchor)} times, expected once")
    return text.replace(anchor, new)


def _outputs(text: str) -> str:
    """The output width of the task's baseline ``_logreg`` (``1`` or ``NUM_CLASSES``)."""
    match = re.search(r"def _logreg\(\) -> nn\.Module:\n\s+return nn\.Linear\(NUM_FEATURES, (\w+)\)", text)
    if not match:
        raise PatchError("model.py has no `_logreg` returning nn.Linear(NUM_FEATURES, ...)")
    return match.group(1)


def _register(text: str, name: str, definition: str, factory: str) -> str:
    text = _replace_once(
        text, "\n\nARCHITECTURES = {\n", f"\n\n{definition.strip()}\n\n\nARCHITECTURES = {{\n"
    )
    return _replace_once(text, "ARCHITECTURES = {\n", f'ARCHITECTURES = {{\n    "{name}": {factory},\n')


def _quadratic(text: str) -> str:
    outputs = _outputs(text)
    definition = f'''
class _QuadraticLinear(nn.Module):
    """Linear in the features and their squares: a quadratic boundary at twice logreg's size."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * NUM_FEATURES, {outputs})

    def forward(self, x):
        return self.linear(torch.cat([x, x * x], dim=-1))
'''
    return _register(text, "quadlin", definition, "_QuadraticLinear")


def _small_mlp(text: str) -> str:
    outputs = _outputs(text)
    definition = f'''
def _mlp8_tanh() -> nn.Module:
    """A small smooth MLP (8 tanh units): capacity for interactions, few parameters to average."""
    return nn.Sequential(nn.Linear(NUM_FEATURES, 8), nn.Tanh(), nn.Linear(8, {outputs}))
'''
    return _register(text, "mlp8tanh", definition, "_mlp8_tanh")


def _nesterov(text: str) -> str:
    anchor = "torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)"
    return _replace_once(
        text,
        anchor,
        "torch.optim.SGD(\n            params, lr=lr, momentum=momentum, weight_decay=weight_decay, "
        "nesterov=momentum > 0  # afr mechanism: nesterov\n        )",
    )


def _cosine_local_lr(text: str) -> str:
    anchor = "    for _ in range(steps):\n        features, labels = next(data)\n"
    new = (
        '    base_lrs = [group["lr"] for group in optimizer.param_groups]  # afr mechanism: cosine_lr\n'
        "    for step in range(steps):\n"
        "        # Cosine decay of the local step size over the round: large early steps, small late\n"
        "        # ones, so local models drift less from the global one before they are averaged.\n"
        "        for group, base in zip(optimizer.param_groups, base_lrs):\n"
        '            group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))\n'
        "        features, labels = next(data)\n"
    )
    text = _replace_once(text, anchor, new)
    if not re.search(r"^import math$", text, re.M):
        text = _replace_once(text, "import random\n", "import math\nimport random\n")
    return text


MECHANISMS: tuple[Mechanism, ...] = (
    Mechanism(
        "quadlin",
        "architecture",
        "model.py",
        "quadratic-linear model: logistic regression on the features and their squares",
        _quadratic,
        '"quadlin":',
        {"model_arch": "quadlin"},
    ),
    Mechanism(
        "mlp8tanh",
        "architecture",
        "model.py",
        "small MLP: 8 tanh hidden units",
        _small_mlp,
        '"mlp8tanh":',
        {"model_arch": "mlp8tanh"},
    ),
    Mechanism(
        "nesterov",
        "training",
        "tasks/shared/training.py",
        "Nesterov momentum for the local SGD optimiser",
        _nesterov,
        "afr mechanism: nesterov",
        {"optimizer": "sgd", "momentum": 0.9},
    ),
    Mechanism(
        "cosine_lr",
        "training",
        "tasks/shared/training.py",
        "cosine decay of the local learning rate within each round",
        _cosine_local_lr,
        "afr mechanism: cosine_lr",
        {},
    ),
)


def path_of(mechanism: Mechanism, profile: Profile) -> str:
    return f"{profile.task_dir}/{mechanism.file}" if mechanism.kind == "architecture" else mechanism.file


def available(profile: Profile) -> list[Mechanism]:
    """Mechanisms whose file is on the profile's editable surface and whose args it declares."""
    return [
        m
        for m in MECHANISMS
        if path_of(m, profile) in profile.surface.editable
        and all(k in profile.mutable for k in m.args)
        and all(profile.mutable[k].problem(v) is None or k == "model_arch" for k, v in m.args.items())
    ]


def by_name(name: str) -> Mechanism:
    for mechanism in MECHANISMS:
        if mechanism.name == name:
            return mechanism
    raise KeyError(f"no mechanism {name!r}; bundled: {', '.join(m.name for m in MECHANISMS)}")


def file_at(root: Path, commit: str | None, path: str) -> str:
    """A workspace file as it is at ``commit`` (the working tree's when None)."""
    if commit is None:
        return (Path(root) / path).read_text(encoding="utf-8")
    return safe_repo(root).git.show(f"{commit}:{path}") + "\n"


def edits_for(
    mechanisms: list[Mechanism], profile: Profile, root: Path, commit: str | None
) -> dict[str, str]:
    """The edits (path -> full new text) that add ``mechanisms`` to the files at ``commit``;
    a mechanism the file already has adds nothing. Raises PatchError when an anchor is gone."""
    texts: dict[str, str] = {}
    for mechanism in mechanisms:
        path = path_of(mechanism, profile)
        text = texts.get(path) or file_at(root, commit, path)
        if mechanism.marker in text:
            continue
        texts[path] = mechanism.patch(text)
    return texts
