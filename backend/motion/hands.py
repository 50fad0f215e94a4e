"""SMPL-X hand-pose conventions: the relaxed hand mean and conversion to absolute (flat-mean) hand poses.

SMPL-X stores hand poses either absolute (``flat_hand_mean=True``, the project's convention, DESIGN.md section 2)
or relative to a relaxed mean hand (``flat_hand_mean=False``, as BEAT2 does): absolute = relative + mean.
The mean (15 left then 15 right hand joints, axis-angle) is read at run time from the installed ``mannequin-x``
package (``mannequin/assets/smplx_calibration.npz``, key ``hand_mean``); this project never ships the numbers.

numpy-only. (``mannequin-x`` itself needs numpy >= 2, so in Blender's Python the mean is usually unavailable;
convert files in the backend.)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .motion import Motion, load_npz

HAND_SLICE = slice(75, 165)  # the 30 hand joints (25..54) in a (T, 165) poses row
_ASSET = "smplx_calibration.npz"
_INSTALL_HINT = "Install it with `pip install mannequin-x` in the backend's Python environment."
CONVENTIONS = ("flat", "relaxed")


def _calibration_path() -> Path:
    """Locate ``mannequin/assets/smplx_calibration.npz`` without importing the package."""
    try:
        dist = importlib.metadata.distribution("mannequin-x")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    candidates: list[Path] = []
    if dist is not None and dist.files:
        candidates += [Path(str(f.locate())) for f in dist.files if f.name == _ASSET]
    spec = importlib.util.find_spec("mannequin")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "assets" / _ASSET for p in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    if dist is None and spec is None:
        raise WeightsError("The relaxed SMPL-X hand mean comes from the `mannequin-x` package, which is not "
                           f"installed. {_INSTALL_HINT}")
    raise WeightsError(f"The installed `mannequin-x` package has no assets/{_ASSET}. Reinstall it with "
                       "`pip install --force-reinstall mannequin-x`.")


@lru_cache(maxsize=1)
def _load_hand_mean() -> np.ndarray:
    path = _calibration_path()
    try:
        with np.load(path, allow_pickle=False) as data:
            mean = np.asarray(data["hand_mean"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"Cannot read the hand mean from {path} ({exc}). Reinstall it with "
                           "`pip install --force-reinstall mannequin-x`.") from exc
    if mean.size != 90 or not np.all(np.isfinite(mean)):
        raise WeightsError(f"{path}: 'hand_mean' has shape {mean.shape}, expected (30, 3) finite values. "
                           "Reinstall it with `pip install --force-reinstall mannequin-x`.")
    mean = mean.reshape(90)
    mean.setflags(write=False)
    return mean


def relaxed_hand_mean() -> np.ndarray:
    """The SMPL-X relaxed hand mean (``hands_meanl`` then ``hands_meanr``) from the installed ``mannequin-x``.

    Returns:
        (90,) float32 axis-angle, radians: 15 left-hand joints then 15 right-hand joints, SMPL-X joint order
        25..54.

    Raises:
        WeightsError: ``mannequin-x`` is not installed (the message says ``pip install mannequin-x``) or its
            asset is unreadable.
    """
    return _load_hand_mean().copy()


def relaxed_to_flat(poses: np.ndarray, hand_mean: np.ndarray | None = None) -> np.ndarray:
    """Relaxed-mean-relative hand poses to absolute ones: add the mean to the 30 hand joints.

    Args:
        poses: (T, 165) or (T, 55, 3) SMPL-X axis-angle.
        hand_mean: (90,) mean; None = ``relaxed_hand_mean()``.

    Returns:
        A new array of the input's shape and float dtype.
    """
    return _shift_hands(poses, hand_mean, +1.0)


def flat_to_relaxed(poses: np.ndarray, hand_mean: np.ndarray | None = None) -> np.ndarray:
    """Absolute hand poses to relaxed-mean-relative ones (for tools that expect ``flat_hand_mean=False``).

    Args:
        poses: (T, 165) or (T, 55, 3) SMPL-X axis-angle.
        hand_mean: (90,) mean; None = ``relaxed_hand_mean()``.

    Returns:
        A new array of the input's shape and float dtype.
    """
    return _shift_hands(poses, hand_mean, -1.0)


def _shift_hands(poses: np.ndarray, hand_mean: np.ndarray | None, sign: float) -> np.ndarray:
    dtype: type[np.floating] = np.float32 if np.asarray(poses).dtype == np.float32 else np.float64
    arr: np.ndarray = np.array(poses, dtype=dtype)
    shape = arr.shape
    if not ((arr.ndim == 2 and shape[1] == 165) or (arr.ndim == 3 and shape[1:] == (55, 3))):
        raise ValueError(f"poses must be (T, 165) or (T, 55, 3), got {shape}")
    flat = arr.reshape(shape[0], 165)  # a view: arr is a fresh contiguous copy
    mean = relaxed_hand_mean() if hand_mean is None else np.asarray(hand_mean, dtype=np.float64).reshape(90)
    flat[:, HAND_SLICE] += (sign * mean).astype(dtype)
    return flat.reshape(shape)


def load_npz_convention(path: str | os.PathLike[str], convention: str = "flat") -> Motion:
    """Load an SMPL-X ``.npz`` motion, naming its hand-pose convention.

    Args:
        path: the file.
        convention: ``"flat"`` = hand poses already absolute (AMASS, this project's files);
            ``"relaxed"`` = relative to the relaxed mean (BEAT2, ``flat_hand_mean=False``): the mean is added.

    Returns:
        The Motion with absolute hand poses.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return load_npz(path, hand_mean=relaxed_hand_mean() if convention == "relaxed" else None)
