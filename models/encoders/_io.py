"""Safe reading of checkpoint files and translation of loader failures into :class:`WeightsError`.

Only ``torch.load(weights_only=True)`` is used: it refuses any pickled object other than tensors and plain
containers, so a tampered file cannot run code. Every failure becomes one sentence that names the file and
says what to do.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.errors import WeightsError

ZIP_MAGIC = b"PK\x03\x04"


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


def torch_load_safe(path: Path, *, what: str, fix: str) -> Any:
    """Load a ``torch.save`` file with ``weights_only=True`` (memory-mapped when the file allows it).

    Args:
        path: the checkpoint file.
        what: what the file should be, for messages (e.g. "the WavLM-Large checkpoint").
        fix: a sentence telling the user how to get a good copy.

    Returns:
        The unpickled object: tensors in dicts/lists/tuples of plain values.

    Raises:
        WeightsError: missing, empty, truncated, corrupt, TorchScript, or holding non-tensor Python objects.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} is missing: expected the file {path}. {fix}")
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{what} at {path} is empty (0 bytes). {fix}")
    with open(path, "rb") as handle:
        head = handle.read(4)
    is_zip = head == ZIP_MAGIC
    if is_zip and not zipfile.is_zipfile(path):
        raise WeightsError(f"{what} at {path} is truncated or corrupt ({size} bytes; the zip directory at its "
                           f"end is missing). Download or copy it again. {fix}")
    if is_zip and is_torchscript_archive(path):
        raise WeightsError(f"{what} at {path} is a TorchScript archive, not a checkpoint of tensors. {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        raise WeightsError(f"{what} at {path} holds Python objects other than tensors, so it was not loaded "
                           f"(it may be tampered with or not a checkpoint at all; {_unpickler_reason(error)}). "
                           f"{fix}") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError, ImportError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{what} at {path} could not be read as a PyTorch checkpoint; it is truncated, "
                           f"corrupt or of another format ({reason}). {fix}") from None


@contextlib.contextmanager
def translate_hf_errors(path: Path, what: str, fix: str) -> Iterator[None]:
    """Turn a ``transformers`` loading failure inside the block into one :class:`WeightsError` sentence.

    Args:
        path: the folder being loaded.
        what: what the folder should hold, for messages.
        fix: a sentence telling the user how to get a good copy.
    """
    import pickle

    try:
        yield
    except WeightsError:
        raise
    except pickle.UnpicklingError:
        raise WeightsError(f"{what} in {path} holds Python objects other than tensors, so it was not loaded "
                           f"(tampered with or not a checkpoint). {fix}") from None
    except Exception as error:  # transformers raises OSError, ValueError, RuntimeError, safetensors errors …
        reason = " ".join(str(error).split())[:240] or type(error).__name__
        raise WeightsError(f"{what} in {path} could not be loaded ({type(error).__name__}: {reason}). "
                           f"{fix}") from None


def require_dir(path: Path, what: str, required: tuple[str, ...], fix: str) -> Path:
    """Check that a Hugging Face folder exists and holds the named files (any one of each ``a|b`` group).

    Args:
        path: the folder.
        what: what the folder should be, for messages.
        required: file names; an entry ``"a|b"`` is satisfied by either file.
        fix: a sentence telling the user how to get a good copy.

    Returns:
        The folder as a Path.
    """
    path = Path(path)
    if not path.is_dir():
        raise WeightsError(f"{what} is missing: expected the folder {path}. {fix}")
    missing = [group.replace("|", " or ") for group in required
               if not any((path / name).is_file() for name in group.split("|"))]
    if missing:
        raise WeightsError(f"{what} in {path} is incomplete: missing {', '.join(missing)}. {fix}")
    return path


def resolve_device(device: str | Any) -> Any:
    """A ``torch.device`` for ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a device object."""
    import torch

    return device if isinstance(device, torch.device) else torch.device(device)


def hf_from_pretrained(model_class: Any, path: Path, what: str, fix: str) -> Any:
    """``model_class.from_pretrained(path, local_files_only=True)`` that fails on missing weights.

    ``transformers`` fills weights absent from a checkpoint with random values and only logs it; here any
    missing key is an error. Keys the class does not use (an MLM head, CLIP's vision tower) are ignored, and a
    shape mismatch is an error (``transformers`` raises it).

    Args:
        model_class: a ``PreTrainedModel`` subclass.
        path: the Hugging Face folder.
        what: what the folder should hold, for messages.
        fix: a sentence telling the user how to get a good copy.

    Returns:
        The model in eval mode.
    """
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the ignored keys on stderr
    try:
        with translate_hf_errors(path, what, fix):
            model, info = model_class.from_pretrained(path, local_files_only=True, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(previous)
    # Rebuilt buffers and the training-only mask embedding may be absent from older exports.
    missing = sorted(key for key in info.get("missing_keys", ())
                     if not key.endswith(("position_ids", "masked_spec_embed")))
    if missing:
        raise WeightsError(f"{what} in {path} lacks {len(missing)} weight(s), e.g. {', '.join(missing[:4])}; "
                           f"the weights file is incomplete or of another model. {fix}")
    return model.eval()
