"""Synthetic test signals shared by the prosody and procedural-engine tests (not a test module)."""

from __future__ import annotations

import numpy as np

RATE = 16000
ONSETS = (0.5, 1.1, 1.75, 2.3, 3.0, 3.6, 4.4, 5.0)


def make_bursts(onsets=ONSETS, seconds: float = 6.0, length: float = 0.16, levels=None, seed: int = 0) -> np.ndarray:
    """Alternating noise and harmonic-tone bursts starting at ``onsets`` (s), with a faint noise floor."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal(int(seconds * RATE)).astype(np.float32) * 1e-3
    count = int(length * RATE)
    ramp = np.minimum(1.0, np.arange(count) / 80) * np.minimum(1.0, (count - np.arange(count)) / 400)
    for i, start in enumerate(onsets):
        t = np.arange(count) / RATE
        if i % 2:
            burst = sum(np.sin(2 * np.pi * k * (140 + 15 * i) * t) / k for k in (1, 2, 3))
        else:
            burst = rng.standard_normal(count) * 0.6
        level = 0.4 if levels is None else levels[i]
        first = int(start * RATE)
        if first + count > len(audio):
            continue
        audio[first:first + count] += (level * burst * ramp).astype(np.float32)
    return audio
