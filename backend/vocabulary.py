"""The request vocabulary, in one place: every name a request, the CLI, the add-on or an engine uses.

Standard library only: the add-on imports it in Blender's Python (``.backend.vocabulary``, bundled by
``build_addon.py``), the backend, the models and the benchmarks import it too. Nothing else declares these
lists; ``tests/backend/test_vocabulary.py`` fails when a copy appears elsewhere. ``docs/vocabulary.md`` lists
each concept and its home.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

# ---- what a request chooses between -------------------------------------------------------------------

Engine = Literal["procedural", "expgest"]
ENGINES: tuple[str, ...] = ("procedural", "expgest")

# The three ExpGest guidance modes (DESIGN.md section 5). The released weights spell one of them
# ``audio_pharse`` (its folder is ``audio_pharse_hybrid_model``); that spelling is accepted on input.
Mode = Literal["audio_only", "audio_phrase", "audio_text"]
MODES: tuple[str, ...] = ("audio_only", "audio_phrase", "audio_text")
MODE_ALIASES: dict[str, str] = {"audio_pharse": "audio_phrase"}

# What a timed text annotation is.
TextKind = Literal["phrase", "motion", "transcript"]
TEXT_KINDS: tuple[str, ...] = ("phrase", "motion", "transcript")

Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

# ``default`` runs the ExpGest engine with the fixes of spec section 8; ``faithful`` reproduces the released
# code's numerics, defects included.
Behaviour = Literal["default", "faithful"]
BEHAVIOURS: tuple[str, ...] = ("default", "faithful")

# BEAT emotion order, as the ExpGest checkpoints index them (spec section 1.7). One name per emotion; the
# aliases (and the released code's misspelling "netural") are accepted on input only.
EMOTIONS: tuple[str, ...] = (
    "neutral", "happiness", "anger", "sadness", "contempt", "surprise", "fear", "disgust",
)
EMOTION_ALIASES: dict[str, str] = {
    "netural": "neutral", "happy": "happiness", "angry": "anger", "sad": "sadness", "surprised": "surprise",
    "afraid": "fear", "disgusted": "disgust",
}

# SMPL-X body models.
Gender = Literal["neutral", "male", "female"]
GENDERS: tuple[str, ...] = ("neutral", "male", "female")

# ---- quality presets: sampler steps of the ExpGest engine (the procedural engine ignores steps) ----------

# One meaning of each preset, for the add-on's Quality menu and the CLI's --quality / --draft.
QUALITY_STEPS: dict[str, int] = {"draft": 50, "standard": 250, "high": 1000}
DEFAULT_STEPS = QUALITY_STEPS["high"]  # the paper's 1000-step chain
MAX_STEPS = 1000

# ---- audio and frames --------------------------------------------------------------------------------

SAMPLE_RATE = 16000  # Hz: every engine and encoder reads 16 kHz mono
MAX_FPS = 240.0


def one_of(names: tuple[str, ...]) -> str:
    """``names`` as a sentence lists them: ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def canonical_mode(mode: str) -> str:
    """``mode`` with the accepted alias replaced (``audio_pharse`` -> ``audio_phrase``); not validated."""
    return MODE_ALIASES.get(mode, mode)


def canonical_emotion(label: str) -> str:
    """``label`` lower-cased, stripped and with an alias replaced (``happy`` -> ``happiness``); not validated."""
    key = label.strip().lower()
    return EMOTION_ALIASES.get(key, key)


def frame_count(duration_s: float, fps: float) -> int:
    """The one frame-count rule: ``round(duration_s * fps)``, halves rounded up.

    The product is formed in decimal arithmetic from the shortest decimal spelling of each float (``repr``),
    so products that are exact in decimal round as written: 0.58 s at 25 fps is 14.5 -> 15 frames, although
    the binary product ``0.58 * 25`` is 14.499999999999998; 50 s at 29.97 fps is 1498.5 -> 1499. For NTSC
    rates pass the true rate (``24000 / 1001``, or Blender's ``fps / fps_base``).

    Args:
        duration_s: duration in seconds, >= 0.
        fps: frames per second, > 0.

    Returns:
        The number of frames.

    Raises:
        ValueError: a negative or non-finite duration, or a non-positive fps.
    """
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    product = Decimal(repr(float(duration_s))) * Decimal(repr(float(fps)))
    return int(product.quantize(Decimal(1), rounding=ROUND_HALF_UP))


__all__ = [
    "BEHAVIOURS", "DEFAULT_STEPS", "DEVICES", "EMOTIONS", "EMOTION_ALIASES", "ENGINES", "GENDERS", "MAX_FPS",
    "MAX_STEPS", "MODES", "MODE_ALIASES", "PRECISIONS", "QUALITY_STEPS", "SAMPLE_RATE", "TEXT_KINDS",
    "Behaviour", "Device", "Engine", "Gender", "Mode", "Precision", "TextKind", "canonical_emotion", "one_of",
    "canonical_mode", "frame_count",
]
