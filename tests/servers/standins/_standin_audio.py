"""Stand-in for ``backend.audio`` (tests only): soundfile read, mono, 16 kHz, range cut."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np

from backend.errors import AudioError


@dataclass
class AudioClip:
    samples: np.ndarray
    duration_s: float
    warnings: list[str] = field(default_factory=list)


def load_audio(path, start_s=0.0, end_s=None, max_duration_s=1800.0):
    import soundfile
    from scipy.signal import resample_poly

    if not Path(path).is_file():
        raise AudioError(f"The audio file {path} does not exist. Choose an existing file.")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioError(f"Could not read {path}: {error}.") from None
    mono = data.mean(axis=1)
    divisor = gcd(int(rate), 16000)
    mono = resample_poly(mono, 16000 // divisor, int(rate) // divisor).astype(np.float32)
    start = int(round(start_s * 16000))
    end = len(mono) if end_s is None else int(round(end_s * 16000))
    mono = mono[start:end]
    if len(mono) == 0:
        raise AudioError("The audio range is empty.")
    return AudioClip(samples=mono, duration_s=len(mono) / 16000)
