"""The one safe reader of weight files: ``torch.load(weights_only=True)`` or safetensors, nothing else.

``torch.load(weights_only=True)`` refuses any pickled object other than tensors and plain containers, so a
tampered file cannot run code; ``.safetensors`` files hold tensors only. Every failure becomes one
``WeightsError`` sentence that names the file and says what to do. Every checkpoint in ``models/`` is read
through ``load_weights_file`` (the raw object, e.g. the WavLM and CLIP checkpoints) or
``load_state_dict_file`` (a flat ``{key: tensor}`` state dict, e.g. the ExpGest networks).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import WeightsError

ZIP_MAGIC = b"PK\x03\x04"
DEFAULT_WHAT = "Weights file"
DEFAULT_FIX = ("Put the released checkpoint file there (or point the models folder at the directory that "
               "holds it), or re-save it as a state dict of tensors or as .safetensors.")
_SHOW = 4  # offending entries quoted in an error message


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript (``torch.jit.save``) zip archive rather than a ``torch.save`` file.

    Args:
        path: an existing file.

    Returns:
        True when the zip holds a ``code/`` folder or ``constants.pkl`` beside ``data.pkl``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in name or name.endswith("/constants.pkl") for name in names)


def _unpickler_reason(error: BaseException) -> str:
    """The informative sentence of a ``weights_only`` refusal (which global or opcode was refused)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()[:200]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation",
                                                             "(1)", "(2)", "Please file an issue"))]
    return (useful[0] if useful else "refused by the safe loader")[:200]


def _unreadable(name: str, error: BaseException, fix: str) -> str:
    text = str(error).strip()
    reason = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(error).__name__
    return (f"{name} could not be read ({reason[:160]}). It is probably truncated or corrupted: download it again "
            f"and check its size. {fix}")


def _check_file(path: Path, name: str, fix: str) -> bool:
    """Refuse a missing, empty, non-checkpoint, truncated-zip or TorchScript file; returns whether it is a zip."""
    if not path.is_file():
        raise WeightsError(f"{name} is missing: the file was not found. {fix}", data={"path": str(path)})
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{name} is empty (0 bytes). {fix}", data={"path": str(path)})
    if path.suffix == ".safetensors":
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise WeightsError(_unreadable(name, error, fix), data={"path": str(path)}) from None
    if not head.startswith((b"\x80", b"PK")):  # neither a pickle nor a torch zip file
        raise WeightsError(f"{name} could not be read: it is not a PyTorch checkpoint (it begins with {head!r}). "
                           f"{fix}", data={"path": str(path)})
    is_zip = head.startswith(ZIP_MAGIC)
    if is_zip and not zipfile.is_zipfile(path):
        raise WeightsError(f"{name} could not be read: it is truncated or corrupted ({size} bytes; the zip "
                           f"directory at its end is missing); download it again and check its size. {fix}",
                           data={"path": str(path)})
    if is_zip and is_torchscript_archive(path):
        raise WeightsError(f"{name} is a TorchScript archive, not a checkpoint of tensors. {fix}",
                           data={"path": str(path)})
    return is_zip


def load_weights_file(path: str | Path, *, what: str = DEFAULT_WHAT, fix: str = DEFAULT_FIX) -> Any:
    """Read a weight file safely (CPU tensors, memory-mapped when the file is in torch's zip format).

    Args:
        path: the file (``.safetensors``, or a ``torch.save`` file: zip or legacy pickle).
        what: what the file should be, for messages (e.g. "The WavLM checkpoint").
        fix: a sentence telling the user how to get a good copy.

    Returns:
        The stored object: tensors in dicts/lists/tuples of plain values (a dict of tensors for safetensors).

    Raises:
        WeightsError: missing, empty, not a checkpoint, truncated, corrupt, TorchScript, too large for memory,
            or holding Python objects other than tensors.
    """
    import torch

    path = Path(path).expanduser()
    name = f"{what} '{path}'"
    is_zip = _check_file(path, name, fix)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        # Zip-format files are memory-mapped: tensors a network ignores (e.g. the two BERT copies in
        # audio_only model.pt, ~0.9 GB) are then never read into memory.
        with warnings.catch_warnings():  # torch's note on pickle protocols > 2 means nothing to a user
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        raise WeightsError(f"{name} holds Python objects other than tensors, so it was refused for safety (only "
                           f"plain tensors are loaded; {_unpickler_reason(error)}). {fix}",
                           data={"path": str(path)}) from None
    except MemoryError:
        raise WeightsError(f"{name} does not fit in memory. Close other programs or use a machine with more RAM.",
                           data={"path": str(path)}) from None
    except Exception as error:  # torch, zipfile and safetensors raise many types; never leak a deep traceback
        raise WeightsError(_unreadable(name, error, fix), data={"path": str(path)}) from None


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint into a flat ``{key: tensor}`` dict, safely (``load_weights_file``).

    A top-level ``{'state_dict': …}`` wrapper is unwrapped, and ``module`` path segments (DataParallel) are
    removed from every key.

    Args:
        path: the file.

    Returns:
        dict key → CPU tensor.

    Raises:
        WeightsError: what ``load_weights_file`` raises, or the file is not a state dict of tensors.
    """
    from torch import Tensor

    path = Path(path).expanduser()
    obj = load_weights_file(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"Weights file '{path}' holds a {type(obj).__name__}, not a state dict of tensors. "
                           f"Use the released checkpoint file.", data={"path": str(path)})
    out: dict[str, Any] = {}
    bad = []
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            bad.append(f"{key!r} ({type(value).__name__})")
            continue
        out[strip_module_prefix(key)] = value
    if bad:
        raise WeightsError(f"Weights file '{path}' is not a state dict of tensors (entries such as "
                           f"{', '.join(bad[:_SHOW])}). Use the released checkpoint file.", data={"path": str(path)})
    if not out:
        raise WeightsError(f"Weights file '{path}' holds no tensors. Download it again.", data={"path": str(path)})
    return out


def strip_module_prefix(key: str) -> str:
    """Remove DataParallel ``module`` path segments: ``module.encoder.x`` → ``encoder.x``."""
    return ".".join(part for part in key.split(".") if part != "module")
