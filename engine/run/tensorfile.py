"""Reading what a saved PyTorch model file holds without PyTorch and without running its pickle.

``torch.save`` writes a zip whose ``data.pkl`` describes the object and whose ``data/<key>``
entries hold the raw storages. The engine must not unpickle a file a candidate's job
wrote, and need not import torch to count it: this restricted unpickler resolves only the
handful of globals a state dict uses, turns every tensor into its shape and every storage
reference into its element count, and refuses anything else.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_PICKLE_BYTES = 16 * 1024 * 1024
STORAGE_TYPES = frozenset(
    f"{kind}Storage"
    for kind in (
        "Float",
        "Double",
        "Half",
        "BFloat16",
        "Long",
        "Int",
        "Short",
        "Char",
        "Byte",
        "Bool",
        "Untyped",
    )
)


@dataclass(frozen=True)
class StorageRef:
    key: str
    numel: int


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    storage: StorageRef

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _rebuild_tensor(storage, offset, size, stride, *rest) -> TensorInfo:
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor without a storage")
    return TensorInfo(tuple(int(n) for n in size), storage)


def _rebuild_parameter(data, *rest) -> TensorInfo:
    return data


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _Restricted(pickle.Unpickler):
    GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_TYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id")
        return StorageRef(str(pid[2]), int(pid[4]))


def read_state(path: Path) -> dict[str, TensorInfo]:
    """The state dict of a saved model (NVFlare's ``{"model": state, ...}`` or a bare one), as shapes.

    Raises ValueError for anything that is not a zip-format PyTorch file of tensors.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(names) != 1:
                raise ValueError(f"{Path(path).name} is not a PyTorch zip file")
            if archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
                raise ValueError(f"{Path(path).name}: data.pkl is too large")
            raw = archive.read(names[0])
        loaded = _Restricted(io.BytesIO(raw)).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, TypeError, AttributeError) as error:
        raise ValueError(f"{Path(path).name}: {error}") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, TensorInfo) for v in state.values()):
        raise ValueError(f"{Path(path).name} holds no state dict of tensors")
    return {str(key): value for key, value in state.items()}


def stored_elements(state: dict[str, TensorInfo]) -> int:
    """Elements of every storage the state references, each counted once (an upper bound on its data)."""
    storages = {info.storage.key: info.storage.numel for info in state.values()}
    return max(sum(storages.values()), sum(info.numel for info in state.values()))
