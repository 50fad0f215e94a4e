"""Loading the encoders' folders and translating loader failures into :class:`WeightsError`.

Checkpoint files are read by the one safe reader, ``models.weights_io.load_weights_file``
(``torch.load(weights_only=True)`` or safetensors); this module wraps ``transformers`` folder loading.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import WeightsError


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
