"""Emotion style: how each of the eight BEAT emotions changes the gestures, and its strength over time.

The directions follow ``shared/notes/gestures.md`` section 5 (Wallbott 1998; Dael, Mortillaro & Scherer 2012):
anger moves more, bigger and faster but stays smooth; happiness is open, expansive and upward; sadness is low,
slow and small but keeps gesturing; fear is closed, tense, small and fast; surprise raises the hands and then
freezes; contempt and disgust turn away with small one-handed dismissive flicks.

A style at strength s is ``neutral + s (emotion - neutral)`` field by field (s continuous in [0, 2]); several
timed spans blend by their weights. ``clamp_style`` keeps every field inside a plausible range so that
strength 2 stays physically possible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from ...request import EmotionSpan
from .curves import window


@dataclass(frozen=True)
class EmotionStyle:
    """Gesture style at strength 1 (the neutral values are the defaults).

    Attributes:
        share: probability that a gesture unit is performed at all (the rest is speech at rest).
        rate: stroke density multiplier (the minimum gap between strokes is divided by it).
        size: stroke travel multiplier.
        tempo: stroke speed multiplier (durations are divided by it).
        height: gesture space vertical offset, m.
        width: gesture space lateral offset (outwards), m.
        forward: gesture space forward offset, m.
        palm_up: bias towards open palm-up gestures (sweeps, presenting).
        fist: bias towards fists, pointing and cutting (forceful gestures).
        raise_: bias towards raising both hands (surprise).
        flick: bias towards small dismissive one-hand flicks (contempt, disgust).
        both: share of strokes made by both hands together.
        hold: hold duration multiplier (after strokes; surprise freezes).
        lean: spine flexion, rad (positive = forward).
        head_pitch: rad, positive = head down.
        head_yaw: rad, head turned to the body's left (negative: right).
        head_roll: rad, head tilt.
        shoulders: collar elevation, rad (positive = shoulders up).
        elbows: elbows out (positive) or tucked in (negative), rad of the elbow pole.
        tension: finger tension, positive towards a fist, negative towards spread fingers.
        sway: ambient body motion multiplier.
        nod: head nod multiplier.
        clasp: probability of resting with the hands clasped in front (else beside the thighs).
    """

    share: float = 0.75
    rate: float = 1.0
    size: float = 1.0
    tempo: float = 1.0
    height: float = 0.0
    width: float = 0.0
    forward: float = 0.0
    palm_up: float = 0.0
    fist: float = 0.0
    raise_: float = 0.0
    flick: float = 0.0
    both: float = 0.64
    hold: float = 1.0
    lean: float = 0.0
    head_pitch: float = 0.0
    head_yaw: float = 0.0
    head_roll: float = 0.0
    shoulders: float = 0.0
    elbows: float = 0.0
    tension: float = 0.0
    sway: float = 1.0
    nod: float = 1.0
    clasp: float = 0.35


EMOTION_STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(),
    "happiness": EmotionStyle(share=0.8, rate=1.2, size=1.3, tempo=1.1, height=0.05, width=0.06, forward=0.02,
                              palm_up=0.8, both=0.66, lean=-0.03, head_pitch=-0.07, tension=-0.35, sway=1.3,
                              nod=1.3, clasp=0.2),
    "anger": EmotionStyle(share=0.8, rate=1.3, size=1.6, tempo=1.3, height=0.02, width=0.04, forward=0.04,
                          fist=0.9, both=0.66, hold=1.2, lean=0.1, head_pitch=0.05, shoulders=0.03, elbows=0.25,
                          tension=0.55, sway=0.8, nod=1.6, clasp=0.1),
    "sadness": EmotionStyle(share=0.7, rate=0.7, size=0.55, tempo=0.75, height=-0.14, width=-0.03, forward=-0.04,
                            palm_up=0.3, both=0.5, hold=1.2, lean=0.15, head_pitch=0.26, shoulders=-0.04,
                            elbows=-0.1, tension=-0.1, sway=0.6, nod=0.5, clasp=0.5),
    "fear": EmotionStyle(share=0.72, rate=1.15, size=0.8, tempo=1.2, height=0.06, width=-0.05, forward=-0.03,
                         both=0.6, hold=0.8, lean=-0.02, head_pitch=0.08, shoulders=0.12, elbows=-0.1,
                         tension=0.4, sway=0.8, nod=0.8, clasp=0.6),
    "surprise": EmotionStyle(share=0.8, rate=0.9, size=1.2, tempo=1.4, height=0.1, width=0.04, forward=0.02,
                             palm_up=0.3, raise_=1.0, both=0.66, hold=1.7, lean=-0.05, head_pitch=-0.1,
                             shoulders=0.06, tension=-0.5, nod=0.7, clasp=0.2),
    "contempt": EmotionStyle(share=0.72, rate=0.8, size=0.75, tempo=0.9, height=-0.03, flick=1.0, both=0.5,
                             lean=-0.06, head_pitch=-0.15, head_yaw=0.16, head_roll=0.08, tension=0.1, sway=0.7,
                             clasp=0.3),
    "disgust": EmotionStyle(share=0.72, rate=0.85, size=0.8, width=-0.02, flick=0.8, both=0.55, lean=-0.05,
                            head_pitch=-0.05, head_yaw=-0.2, head_roll=-0.06, tension=0.3, sway=0.8, clasp=0.3),
}
STYLE_FIELDS = tuple(f.name for f in fields(EmotionStyle))

# Plausible range of every field, whatever the strength (strength 2 must stay physically possible).
_RANGES = {
    "share": (0.3, 1.0), "rate": (0.35, 1.8), "size": (0.3, 1.9), "tempo": (0.55, 1.6), "height": (-0.18, 0.14),
    "width": (-0.08, 0.1), "forward": (-0.06, 0.06), "palm_up": (0.0, 1.5), "fist": (0.0, 1.5),
    "raise_": (0.0, 1.5), "flick": (0.0, 1.5), "both": (0.15, 0.9), "hold": (0.6, 1.8), "lean": (-0.1, 0.18),
    "head_pitch": (-0.25, 0.4), "head_yaw": (-0.3, 0.3), "head_roll": (-0.15, 0.15), "shoulders": (-0.08, 0.2),
    "elbows": (-0.2, 0.45), "tension": (-0.8, 0.9), "sway": (0.3, 2.0), "nod": (0.0, 2.5), "clasp": (0.0, 0.8),
}


def emotion_curves(spans: tuple[EmotionSpan, ...], times: np.ndarray, duration: float) -> dict[str, np.ndarray]:
    """Per-frame style from the request's emotion spans.

    style(t) = neutral + sum_i w_i(t) s_i (style_i - neutral) / max(1, sum_i w_i(t)), where w_i is 1 inside
    span i (easing in and out over 0.4 s around timed edges) and s_i its strength; each field is then clamped
    to its plausible range.

    Args:
        spans: the request's emotion spans (label, strength 0-2, optional start/end in seconds).
        times: (T,) sample times, s.
        duration: clip duration, s.

    Returns:
        {field: (T,) float64} for every ``EmotionStyle`` field.
    """
    neutral = EMOTION_STYLES["neutral"]
    total = np.zeros(len(times))
    offsets = {name: np.zeros(len(times)) for name in STYLE_FIELDS}
    for span in spans:
        if span.start_s is None and span.end_s is None:
            weight = np.ones(len(times))
        else:
            start = 0.0 if span.start_s is None else span.start_s
            end = duration + 1.0 if span.end_s is None else span.end_s
            weight = window(times, start - 0.2, end + 0.2, 0.4)
        total += weight
        target = EMOTION_STYLES[span.label]
        for name in STYLE_FIELDS:
            offsets[name] += weight * span.strength * (getattr(target, name) - getattr(neutral, name))
    norm = np.maximum(total, 1.0)
    return {name: np.clip(getattr(neutral, name) + offsets[name] / norm, *_RANGES[name]) for name in STYLE_FIELDS}


def style_sampler(spans: tuple[EmotionSpan, ...], duration: float, step: float = 0.01
                  ) -> Callable[[float], dict[str, float]]:
    """A function t -> the style fields at time t (s), read from the spans on a fixed 10 ms grid.

    The grid does not depend on the frame rate, so the plan (which reads the style at accents) is the same at
    any fps.
    """
    grid = np.arange(0.0, duration + 2 * step, step)
    curves = emotion_curves(spans, grid, duration)

    def sample(t: float) -> dict[str, float]:
        index = min(max(int(round(t / step)), 0), len(grid) - 1)
        return {name: float(curve[index]) for name, curve in curves.items()}

    return sample
