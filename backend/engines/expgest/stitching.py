"""Long audio as overlapping diffusion windows: geometry, audio chunks, seeds, root alignment and blending.

Pure numpy (no torch): tested with fake ``sample_fn``s. ExpGest generates fixed-size windows of ``n_poses``
frames at 20 fps whose first ``n_seed = 8`` frames re-generate the last 8 frames of the previous window
(conditioned on them as "seed"), so consecutive windows overlap by 8 frames:

* window i covers output frames [i·stride − 8, i·stride + n_poses − 8) with stride = n_poses − 8, i.e. its audio
  is the last 8·800 samples of chunk i−1 (zeros for i = 0) followed by chunk i (stride·800 samples);
* frame k of the stitched sequence is audio time k / 20 s once the first 8 frames (the zero-audio prefix of
  window 0) are dropped.

Two behaviours:

``faithful`` — exactly the reference demo: W = ceil(N / stride) windows, root aligned, only the first overlap
frame blended 50/50 (its cross-fade loop ran over the batch size, 1), the last window's final 8 frames dropped
too, and the result cut or padded to N frames by repeating the last frame.

``default`` — the intended behaviour: a real 8-frame linear cross-fade (weights (8−j)/9 and (j+1)/9), the last
window's final 8 frames kept (they are the end of the audio, not an overlap), audio shorter than one stride padded
to one stride (the demo crashes there), and per-window conditions (text, emotion) looked up by time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ...vocabulary import SAMPLE_RATE, Behaviour

T = TypeVar("T")


@dataclass(frozen=True)
class WindowGeometry:
    """Window sizes in motion frames.

    Attributes:
        n_poses: frames per window (88 audio_only, 180 hybrids).
        n_seed: overlap / seed frames (8).
        fps: motion frame rate (20).
        sample_rate: audio sample rate (16 000 Hz).
    """

    n_poses: int
    n_seed: int = 8
    fps: int = 20
    sample_rate: int = SAMPLE_RATE

    @property
    def stride(self) -> int:
        """New frames per window (80 or 172)."""
        return self.n_poses - self.n_seed

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per motion frame (800)."""
        return self.sample_rate // self.fps


AUDIO_ONLY_GEOMETRY = WindowGeometry(n_poses=88)
HYBRID_GEOMETRY = WindowGeometry(n_poses=180)


@dataclass(frozen=True)
class WindowPlan:
    """How a clip is cut into windows.

    Attributes:
        geometry: window sizes.
        n_frames: frames the caller wants (20 fps), ≥ 1.
        n_windows: W.
    """

    geometry: WindowGeometry
    n_frames: int
    n_windows: int

    def window_frames(self, index: int) -> tuple[int, int]:
        """Output frames [start, end) that window ``index`` covers (may start at −8 for window 0)."""
        start = index * self.geometry.stride - self.geometry.n_seed
        return start, start + self.geometry.n_poses

    def window_seconds(self, index: int) -> tuple[float, float]:
        """Audio time range [start_s, end_s) of window ``index`` (clipped at 0)."""
        start, end = self.window_frames(index)
        return max(start, 0) / self.geometry.fps, end / self.geometry.fps


def frames_for_samples(n_samples: int, geometry: WindowGeometry) -> int:
    """Motion frames for an audio clip, ``n_samples · fps // sample_rate`` as the reference (at least 1)."""
    return max(1, n_samples * geometry.fps // geometry.sample_rate)


def plan_windows(n_frames: int, geometry: WindowGeometry, behaviour: Behaviour = "default") -> WindowPlan:
    """Number of windows for ``n_frames`` output frames: ceil(N / stride), at least one.

    Args:
        n_frames: requested frames (20 fps), ≥ 1.
        geometry: window sizes.
        behaviour: both behaviours use the same count; ``default`` keeps the last window's final frames, so
            W·stride frames are produced, while ``faithful`` produces W·stride − 8 and pads.

    Returns:
        The plan.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    return WindowPlan(geometry=geometry, n_frames=n_frames, n_windows=max(1, math.ceil(n_frames / geometry.stride)))


def window_audio(audio: np.ndarray, plan: WindowPlan) -> list[np.ndarray]:
    """Cut 16 kHz audio into the per-window waveforms the audio encoders see.

    The audio is cut or zero-padded to W·stride·800 samples (short clips are therefore padded to one stride),
    split into W chunks, and window i gets [last 8·800 samples of chunk i−1 (zeros for i = 0) ‖ chunk i].

    Args:
        audio: (N,) float32 mono waveform at 16 kHz.
        plan: the window plan.

    Returns:
        W float32 arrays of n_poses·800 samples (70 400 for audio_only, 144 000 for hybrids).
    """
    geometry = plan.geometry
    chunk = geometry.stride * geometry.samples_per_frame
    prefix = geometry.n_seed * geometry.samples_per_frame
    padded = np.zeros(plan.n_windows * chunk, dtype=np.float32)
    used = min(len(audio), len(padded))
    padded[:used] = np.asarray(audio[:used], dtype=np.float32)
    chunks = padded.reshape(plan.n_windows, chunk)
    windows = []
    for i in range(plan.n_windows):
        head = chunks[i - 1, -prefix:] if i > 0 else np.zeros(prefix, dtype=np.float32)
        windows.append(np.concatenate([head, chunks[i]]))
    return windows


def assign_by_time(spans: Sequence[tuple[float, float, T]], plan: WindowPlan) -> list[T | None]:
    """Per window, the value of the span that overlaps it most (the first one on ties; None if none overlaps).

    Args:
        spans: (start_s, end_s, value) in seconds of the clip.
        plan: the window plan.

    Returns:
        One value (or None) per window.
    """
    chosen: list[T | None] = []
    for index in range(plan.n_windows):
        start, end = plan.window_seconds(index)
        best: T | None = None
        best_overlap = 0.0
        for span_start, span_end, value in spans:
            overlap = min(end, span_end) - max(start, span_start)
            if overlap > best_overlap:
                best, best_overlap = value, overlap
        chosen.append(best)
    return chosen


# An alignment pass: (new window, previous window untrimmed, window index) -> aligned new window.
AlignFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def align_audio_only_root(new: np.ndarray, previous: np.ndarray, index: int, *, n_seed: int = 8) -> np.ndarray:
    """Shift root position channels 0:3 so that new frame 0 equals previous frame stride (the same instant).

    Args:
        new: (n_poses, 1141) normalised window.
        previous: (n_poses, 1141) previous window, before trimming.
        index: window index (unused; part of the ``AlignFn`` signature).
        n_seed: overlap frames.

    Returns:
        The aligned window (a copy).
    """
    out = new.copy()
    out[:, 0:3] -= new[0, 0:3] - previous[-n_seed, 0:3]
    return out


# Hybrid 994-dim layout: rot6d 0:330, translation 330:333 (block A's first joint).
HYBRID_TRANS = slice(330, 333)


def make_hybrid_align_faithful(window_texts: Sequence[str], n_seed: int = 8) -> AlignFn:
    """The reference's hybrid heuristics, in normalised space.

    (1) translation [330:333] shifted so new frame 0 equals the previous window's *last* frame; then (2) with an
    empty text, channels 0:78 and 330:333 shifted so new frame 0 equals previous frame stride; with a text only
    channels 0:6.
    """

    def align(new: np.ndarray, previous: np.ndarray, index: int) -> np.ndarray:
        out = new.copy()
        out[:, HYBRID_TRANS] -= out[0, HYBRID_TRANS] - previous[-1, HYBRID_TRANS]
        anchor = previous[-n_seed]
        if window_texts[index] == "":
            delta = out[0] - anchor
            out[:, 0:78] -= delta[0:78]
            out[:, HYBRID_TRANS] -= delta[HYBRID_TRANS]
        else:
            out[:, 0:6] -= out[0, 0:6] - anchor[0:6]
        return out

    return align


def align_hybrid_root(new: np.ndarray, previous: np.ndarray, index: int, *, n_seed: int = 8) -> np.ndarray:
    """Default hybrid alignment: translation shifted so new frame 0 equals previous frame stride (same instant);
    rotations are left to the cross-fade."""
    out = new.copy()
    out[:, HYBRID_TRANS] -= new[0, HYBRID_TRANS] - previous[-n_seed, HYBRID_TRANS]
    return out


def crossfade_weights(n_seed: int, behaviour: Behaviour) -> np.ndarray:
    """Weights of the *previous* window over the overlap frames; the new window gets 1 − w.

    ``default``: w_j = (n − j) / (n + 1), j = 0 … n−1 (8/9 … 1/9). ``faithful``: one frame, w_0 = 1/2.

    Returns:
        (n,) float64 (n = n_seed or 1).
    """
    n = n_seed if behaviour == "default" else 1
    return np.array([(n - j) / (n + 1) for j in range(n)], dtype=np.float64)


def sample_windows(sample_fn: Callable[[int, np.ndarray | None], np.ndarray], plan: WindowPlan,
                   behaviour: Behaviour, align: AlignFn | None) -> np.ndarray:
    """Auto-regressive long-sequence sampling: seed each window with the previous one, align, blend, concatenate.

    Per window i: ``sample_fn(i, seed)`` with seed = the last n_seed frames of window i−1 *as stitched so far*
    (aligned and blended, still normalised; None for i = 0) returns (n_poses, C) normalised frames. Then, for
    i ≥ 1: the previous window loses its last n_seed frames (``prev_tail``), ``align`` shifts the new window, and
    the overlap frames are blended: new[j] = w_j · prev_tail[j] + (1 − w_j) · new[j].

    Args:
        sample_fn: the per-window sampler.
        plan: the window plan.
        behaviour: ``faithful`` or ``default`` (see the module docstring).
        align: the alignment pass (None: no alignment).

    Returns:
        float32 normalised motion, frame k at audio time k / 20 s: (W·stride, C) in ``default`` (the last window
        keeps its final frames), (W·stride − 8, C) in ``faithful``. Cut or pad it to the wanted length with
        ``fit_length`` (after de-normalising, as the reference does).
    """
    geometry = plan.geometry
    n_seed = geometry.n_seed
    weights = crossfade_weights(n_seed, behaviour)
    entries: list[np.ndarray] = []
    for index in range(plan.n_windows):
        seed = entries[-1][-n_seed:].copy() if entries else None
        new = np.asarray(sample_fn(index, seed), dtype=np.float32)
        if new.shape[0] != geometry.n_poses:
            raise ValueError(f"sample_fn returned {new.shape[0]} frames, expected {geometry.n_poses}")
        if entries:
            previous = entries[-1]
            prev_tail = previous[-n_seed:]
            entries[-1] = previous[:-n_seed]
            if align is not None:
                new = align(new, previous, index)
            new = new.copy()
            for j, weight in enumerate(weights):
                new[j] = prev_tail[j] * np.float32(weight) + new[j] * np.float32(1.0 - weight)
        entries.append(new)
    if behaviour == "faithful":
        entries[-1] = entries[-1][:-n_seed]
    return np.concatenate(entries, axis=0)[n_seed:]


def fit_length(sequence: np.ndarray, n_frames: int) -> np.ndarray:
    """Cut to ``n_frames``, or pad by repeating the last frame (the reference's tail handling).

    Args:
        sequence: (T, C) frames.
        n_frames: wanted length.

    Returns:
        (n_frames, C), same dtype.
    """
    if len(sequence) >= n_frames:
        return sequence[:n_frames]
    pad = np.repeat(sequence[-1:], n_frames - len(sequence), axis=0)
    return np.concatenate([sequence, pad], axis=0)
