"""Read the tensors of a TorchScript archive (``torch.jit.save``) without running anything from it.

OpenAI distributes CLIP as TorchScript archives (``ViT-B-32.pt``). ``torch.load(weights_only=True)`` refuses
them, and ``torch.jit.load`` compiles the archive's ``code/`` and runs its TorchScript (``__setstate__`` methods
included), which is a code path we do not want to open on a user-supplied file. The archive is a zip whose
``<name>/data.pkl`` pickles the module tree, with tensors stored as separate ``<name>/data/<key>`` records.

This reader unpickles ``data.pkl`` with an allow-list: module and class objects (``__torch__.*``) become inert
placeholders that only record their attribute dict, tensors are rebuilt from the raw records as numpy-backed
copies, and every other global is refused. Nothing from the archive is imported, compiled or called.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

_STORAGE_DTYPES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "DoubleStorage": "float64", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool",
}


class ScriptObject:
    """Placeholder for a pickled TorchScript object: keeps its qualified name and attribute state."""

    qualified_name = "__torch__"
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any, *_: Any) -> Any:
    import torch

    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset).clone()


def _identity(value: Any, *_: Any) -> Any:
    return value


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, handle: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(handle)
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[tuple[str, str], Any] = {}  # tensors that share a storage record share one buffer

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return type(name, (ScriptObject,), {"qualified_name": f"{module}.{name}"})
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _identity
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist",
                                                      "build_tensorlist", "restore_type_tag"):
            return _identity
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        import torch

        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:80]}")
        dtype = getattr(torch, _STORAGE_DTYPES[pid[1].name])
        key = (str(pid[2]), str(dtype))
        if key not in self._storages:
            raw = bytearray(self._archive.read(f"{self._prefix}data/{pid[2]}"))
            self._storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self._storages[key]


def _flatten(obj: Any, prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    import torch

    if depth > 64:
        return
    state = obj.state if isinstance(obj, ScriptObject) else obj
    if not isinstance(state, dict):
        return
    for name, value in state.items():
        if not isinstance(name, str):
            continue
        key = f"{prefix}{name}"
        if isinstance(value, torch.Tensor):
            out[key] = value
        elif isinstance(value, ScriptObject | dict):
            _flatten(value, f"{key}.", out, depth + 1)


def read_torchscript_tensors(path: Path) -> dict[str, Any]:
    """Every tensor attribute of a TorchScript archive's module tree, by dotted path.

    Args:
        path: a ``torch.jit.save`` zip archive.

    Returns:
        ``{"token_embedding.weight": Tensor, "transformer.resblocks.0.attn_mask": Tensor, …}`` (copies; the
        parameters and buffers of ``state_dict()`` plus any other tensor attributes).

    Raises:
        ValueError: not a TorchScript archive, or its ``data.pkl`` needs anything outside the allow-list
            (message says which).
    """
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("no single <archive>/data.pkl record")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as handle:
            try:
                root = _AllowListUnpickler(handle, archive, prefix).load()
            except (pickle.UnpicklingError, KeyError, EOFError, TypeError, RuntimeError) as error:
                raise ValueError(f"data.pkl could not be read safely: {error}") from None
    tensors: dict[str, Any] = {}
    _flatten(root, "", tensors)
    return tensors
