"""Feature-time helpers shared by the engines."""

from __future__ import annotations

from torch import Tensor, nn


def resample_features(feat: Tensor, n: int) -> Tensor:
    """Resample a feature sequence to ``n`` frames by linear interpolation along time (align_corners=True).

    This is how the original maps WavLM's 50 Hz vectors onto the motion window (e.g. 219 → 88 frames):
    output frame k samples input position k · (T − 1) / (n − 1), so the first and last frames are kept.

    Args:
        feat: (batch, T, channels) features, T ≥ 1.
        n: output frame count, ≥ 1.

    Returns:
        (batch, n, channels), same dtype and device.
    """
    if feat.dim() != 3:
        raise ValueError(f"resample_features expects (batch, frames, channels), got shape {tuple(feat.shape)}.")
    if n < 1 or feat.shape[1] < 1:
        raise ValueError(f"resample_features needs at least one input and one output frame "
                         f"(got {feat.shape[1]} → {n}).")
    return nn.functional.interpolate(feat.transpose(1, 2), size=n, mode="linear", align_corners=True).transpose(1, 2)
