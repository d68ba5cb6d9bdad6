"""The trusted evaluator's model process, run sandboxed as ``python -I predict_child.py`` (spec on stdin).

The model class is candidate code, so predictions are computed here, inside the sandbox,
from evaluation inputs only (features; the labels never leave the engine). The process
  1. builds the registered architecture from the worktree's model module,
  2. refuses a saved state whose keys or shapes that architecture does not declare,
  3. loads it strictly (``torch.load(weights_only=True)``: no pickled code),
  4. counts every parameter (trainable or frozen), every buffer (persistent or not) and any
     other tensor or array held on a module, before and after predicting,
  5. writes the raw outputs per site as ``<out>/<site>.npy`` and a ``report.json``.
It imports nothing from afr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

BATCH = 4096


class Refused(Exception):
    pass


def saved_state(path: str) -> dict[str, torch.Tensor]:
    """The state dict inside NVFlare's persisted model file (``{"model": state, ...}``) or a bare one."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise Refused(f"{Path(path).name} holds no state dict of tensors")
    return state


def check_declared(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    declared = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    undeclared = sorted(set(state) - set(declared))
    if undeclared:
        raise Refused(
            f"saved model has entries the architecture does not declare: {', '.join(undeclared[:5])}"
        )
    missing = sorted(set(declared) - set(state))
    if missing:
        raise Refused(f"saved model lacks entries of the architecture: {', '.join(missing[:5])}")
    for key, shape in declared.items():
        if tuple(state[key].shape) != shape:
            raise Refused(
                f"saved {key} has shape {tuple(state[key].shape)}, the architecture declares {shape}"
            )


def _elements(value, seen: set[int]) -> int:
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if torch.is_tensor(value):
        return value.numel()
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, list | tuple | set | frozenset):
        return sum(_elements(item, seen) for item in value)
    if isinstance(value, dict):
        return sum(_elements(item, seen) for item in value.values())
    return 0


def count(model: torch.nn.Module) -> dict[str, int]:
    """Parameters, buffers and tensors held outside both, each counted once."""
    seen: set[int] = set()
    parameters = sum(_elements(p, seen) for p in model.parameters())
    buffers = sum(_elements(b, seen) for b in model.buffers())
    other = 0
    for module in model.modules():
        for name, value in vars(module).items():
            if name not in ("_parameters", "_buffers", "_modules"):
                other += _elements(value, seen)
    return {"parameters": parameters, "buffers": buffers, "other_tensors": other}


@torch.no_grad()
def outputs(model: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    parts = [model(x[start : start + BATCH]).detach().float().cpu() for start in range(0, len(x), BATCH)]
    return torch.cat(parts).numpy() if parts else np.zeros((0,), dtype=np.float32)


def main(spec: dict) -> dict:
    sys.path.insert(0, spec["worktree"])
    torch.manual_seed(0)
    module = importlib.import_module(spec["model_module"])
    model = module.build_model(spec["arch"])
    state = saved_state(spec["model_file"])
    check_declared(model, state)
    model.load_state_dict(state, strict=True)
    model.eval()
    before = count(model)
    out = Path(spec["out_dir"])
    inputs = Path(spec["inputs_dir"])
    for site in spec["sites"]:
        features = np.load(inputs / f"{site}.npy", allow_pickle=False)
        np.save(out / f"{site}.npy", outputs(model, features).astype(np.float32), allow_pickle=False)
    after = count(model)  # a buffer or table created lazily in forward() is counted too
    counts = {key: max(before[key], after[key]) for key in before}
    return {**counts, "total": sum(counts.values()), "keys": sorted(state)}


def run(spec: dict) -> int:
    report = Path(spec["out_dir"]) / "report.json"
    try:
        result = main(spec)
    except Refused as error:
        report.write_text(json.dumps({"refused": str(error)}))
        return 3
    report.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    # The engine starts this process early and sends the spec once the job has finished.
    code = run(json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.readline()))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # an interpreter holding torch takes seconds to tear down; the files are written
