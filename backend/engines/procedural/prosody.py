"""Speech prosody from a 16 kHz waveform, in numpy/scipy: energy, voice activity, pitch and onsets.

Everything is computed on frames with a 10 ms hop (frame ``i`` is centred on ``i * 0.01`` s) and returned
with times in seconds, so the procedural engine can time gestures to syllables and emphases.

Onsets (syllable nuclei and emphases) are peaks of an onset-strength curve that combines
(1) positive log-spectral flux, sum_k max(0, log|X_i(k)| - log|X_{i-1}(k)|), and
(2) the rise of the frame energy in dB over 30 ms,
picked with a minimum spacing and an adaptive threshold; each onset's ``strength`` in [0, 1] also weighs
loudness and pitch height, so stressed syllables score higher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.ndimage import convolve1d, maximum_filter1d, median_filter, uniform_filter1d

from ...vocabulary import SAMPLE_RATE

HOP_S = 0.01
_HOP = 160          # samples per hop (10 ms)
_WIN = 400          # 25 ms analysis window
_NFFT = 512
_PITCH_WIN = 640    # 40 ms pitch window: two periods of 50 Hz
_F0_MIN = 70.0
_F0_MAX = 400.0
_SILENT_DB = -60.0  # frames quieter than this are never speech
_BLOCK = 4096       # frames per block of frame-wise work


def _no_check() -> None:
    pass


@dataclass
class Prosody:
    """Prosodic features of one clip. Frame ``i`` is centred on ``times[i] = i * hop_s`` seconds.

    Attributes:
        hop_s: frame hop in seconds (0.01).
        times: (F,) float64 frame centres in seconds.
        energy_db: (F,) float32 RMS level in dBFS (floor -100).
        voiced: (F,) bool, speech activity (energy above an adaptive threshold, pauses bridged < 150 ms).
        f0_hz: (F,) float32 pitch estimate in Hz, 0 where unvoiced or unknown.
        onset_envelope: (F,) float32 onset strength curve, >= 0, normalised to a maximum of 1.
        onset_times: (K,) float64 detected onset times in seconds (syllable / emphasis onsets).
        onset_strengths: (K,) float32 strength of each onset in [0, 1] (1 = the strongest emphasis).
        speech_segments: (S, 2) float64 ``[start, end)`` seconds of speech between pauses.
        duration_s: clip duration in seconds.
    """

    hop_s: float
    times: np.ndarray
    energy_db: np.ndarray
    voiced: np.ndarray
    f0_hz: np.ndarray
    onset_envelope: np.ndarray
    onset_times: np.ndarray
    onset_strengths: np.ndarray
    speech_segments: np.ndarray
    duration_s: float

    def pauses(self, min_pause_s: float = 0.0) -> np.ndarray:
        """(P, 2) ``[start, end)`` seconds of the gaps between speech (and before/after it) of at least
        ``min_pause_s``; the whole clip when there is no speech."""
        edges = [0.0]
        for start, end in self.speech_segments:
            edges.extend([float(start), float(end)])
        edges.append(self.duration_s)
        gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2) if edges[i + 1] - edges[i] >= max(
            min_pause_s, 1e-9)]
        return np.array(gaps, dtype=np.float64).reshape(-1, 2)


def analyse_prosody(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, min_onset_spacing_s: float = 0.12,
                    min_pause_s: float = 0.15, check: Callable[[], None] | None = None) -> Prosody:
    """Analyse speech prosody.

    Frame-wise work runs in blocks of ``_BLOCK`` frames (about 41 s), so memory stays bounded on long clips
    and ``check`` runs often.

    Args:
        samples: (N,) float mono waveform at ``sample_rate`` (16 kHz).
        sample_rate: must be 16000.
        min_onset_spacing_s: two onsets are at least this far apart (seconds).
        min_pause_s: silences shorter than this do not split speech segments (seconds).
        check: called between blocks (e.g. ``CancelToken.check``, which raises to stop).

    Returns:
        The ``Prosody`` of the clip.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"analyse_prosody expects {SAMPLE_RATE} Hz audio, got {sample_rate}")
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    duration = len(audio) / SAMPLE_RATE
    num_frames = max(1, int(np.ceil(len(audio) / _HOP)))
    times = np.arange(num_frames) * HOP_S

    check = check or _no_check
    frames = _frames(audio, _WIN, num_frames)
    energy_db = np.empty(num_frames, np.float32)
    flux = np.zeros(num_frames)
    window = np.hanning(_WIN).astype(np.float32)
    previous = None
    for first in range(0, num_frames, _BLOCK):
        block = frames[first:first + _BLOCK]
        energy_db[first:first + len(block)] = 10.0 * np.log10(np.mean(block.astype(np.float64) ** 2, axis=1) + 1e-10)
        # Positive log-spectral flux: sum_k max(0, log|X_i(k)| - log|X_{i-1}(k)|), averaged over bins.
        log_mag = np.log(np.abs(scipy.fft.rfft(block * window, _NFFT, axis=1)).astype(np.float32) + 1e-3)
        if previous is not None:
            log_mag = np.concatenate([previous, log_mag])
        step = np.maximum(log_mag[1:] - log_mag[:-1], 0.0).mean(axis=1)
        flux[first + len(block) - len(step):first + len(block)] = step
        previous = log_mag[-1:]
        check()

    voiced = _voice_activity(energy_db, min_pause_s)
    f0 = _pitch(audio, num_frames, voiced, check)
    envelope = _onset_envelope(flux, energy_db)
    onset_idx = _pick_peaks(envelope, voiced, int(round(min_onset_spacing_s / HOP_S)))
    strengths = _onset_strengths(onset_idx, envelope, energy_db, f0, voiced)
    return Prosody(hop_s=HOP_S, times=times, energy_db=energy_db, voiced=voiced, f0_hz=f0,
                   onset_envelope=envelope, onset_times=onset_idx * HOP_S, onset_strengths=strengths,
                   speech_segments=_segments(voiced), duration_s=duration)


def _frames(audio: np.ndarray, width: int, num_frames: int) -> np.ndarray:
    """(num_frames, width) windows centred on ``i * hop`` (zero padded at the ends)."""
    half = width // 2
    padded = np.pad(audio, (half, half + num_frames * _HOP))
    view = np.lib.stride_tricks.sliding_window_view(padded, width)[::_HOP]
    return view[:num_frames]


def _voice_activity(energy_db: np.ndarray, min_pause_s: float) -> np.ndarray:
    """Speech frames: energy above an adaptive threshold between the noise floor and the speech level."""
    if np.max(energy_db) < _SILENT_DB:
        return np.zeros(len(energy_db), bool)
    smooth = uniform_filter1d(energy_db.astype(np.float64), 3)
    floor = np.percentile(smooth, 10)
    loud = np.percentile(smooth, 95)
    threshold = max(_SILENT_DB, floor + 0.35 * (loud - floor), loud - 35.0)
    active = smooth > threshold
    # Bridge short gaps (stop closures, short pauses) and drop isolated blips shorter than 40 ms.
    gap = int(round(min_pause_s / HOP_S))
    active = _close_gaps(active, gap)
    return _remove_short(active, 4)


def _close_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    out = mask.copy()
    idx = np.flatnonzero(mask)
    if len(idx) < 2:
        return out
    jumps = np.flatnonzero(np.diff(idx) > 1)
    for j in jumps:
        a, b = idx[j], idx[j + 1]
        if b - a - 1 <= max_gap:
            out[a:b] = True
    return out


def _remove_short(mask: np.ndarray, min_len: int) -> np.ndarray:
    out = mask.copy()
    for start, end in _runs(mask):
        if end - start < min_len:
            out[start:end] = False
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return [(int(change[i]), int(change[i + 1])) for i in range(0, len(change), 2)]


def _segments(voiced: np.ndarray) -> np.ndarray:
    runs = _runs(voiced)
    return np.array([(s * HOP_S, e * HOP_S) for s, e in runs], dtype=np.float64).reshape(-1, 2)


def _pitch(audio: np.ndarray, num_frames: int, voiced: np.ndarray, check: Callable[[], None]) -> np.ndarray:
    """F0 by normalised autocorrelation (the YIN idea without its cumulative-mean step), on speech frames.

    On the signal decimated to 8 kHz, every second frame (20 ms hop, 40 ms window):
    r(tau) = sum_n x(n) x(n + tau) / sqrt(sum x(n)^2 * sum x(n + tau)^2); the period is the first lag in
    [1/F0_max, 1/F0_min] whose r is within 10% of the best (avoids octave-down errors), refined by a parabola,
    kept where the peak exceeds 0.45. Odd frames take the value of a voiced neighbour.
    """
    rate = SAMPLE_RATE // 2
    hop = _HOP // 2
    width = _PITCH_WIN // 2
    f0 = np.zeros(num_frames, np.float32)
    idx = np.flatnonzero(voiced[::2]) * 2
    if len(idx) == 0:
        return f0
    # Decimate to 8 kHz behind a short binomial low-pass (enough for F0 <= 400 Hz and its first harmonics).
    kernel = np.array([1, 6, 15, 20, 15, 6, 1], np.float32) / 64.0
    decimated = convolve1d(audio, kernel, mode="constant")[::2]
    padded = np.pad(decimated, (width // 2, width // 2 + num_frames * hop + width))
    view = np.lib.stride_tricks.sliding_window_view(padded, width)
    for first in range(0, len(idx), _BLOCK):
        rows = idx[first:first + _BLOCK]
        f0[rows] = _pitch_block(view[rows * hop], rate, width)
        check()
    odd = np.arange(1, num_frames, 2)
    f0[odd] = np.maximum(f0[odd - 1], f0[np.minimum(odd + 1, num_frames - 1)]) * voiced[odd]
    return f0


def _pitch_block(frames: np.ndarray, rate: int, width: int) -> np.ndarray:
    """F0 (Hz, 0 = unvoiced) of (B, width) frames at ``rate``."""
    frames = frames - frames.mean(axis=1, keepdims=True)
    # Circular correlation aliases only lags above nfft - width = 192 samples, beyond the longest period (114).
    nfft = 512
    acf = scipy.fft.irfft(np.abs(scipy.fft.rfft(frames, nfft, axis=1)) ** 2, nfft, axis=1)[:, :width]
    # Energy of the overlapping parts, for normalisation: e(tau) = sqrt(E[0:W-tau] * E[tau:W]).
    cumsum = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames.astype(np.float64) ** 2, axis=1)], axis=1)
    low, high = int(rate / _F0_MAX), int(rate / _F0_MIN)
    lags = np.arange(low, high + 1)
    window = acf[:, low:high + 1] / np.sqrt(cumsum[:, width - lags] * (cumsum[:, -1:] - cumsum[:, lags]) + 1e-12)
    rows = np.arange(len(window))
    peak = window.max(axis=1)
    best = np.argmax(window >= 0.9 * peak[:, None], axis=1)
    for _ in range(4):  # climb from the first good lag to its local maximum
        step = np.minimum(best + 1, window.shape[1] - 1)
        best = np.where(window[rows, step] > window[rows, best], step, best)
    left = window[rows, np.maximum(best - 1, 0)]
    mid = window[rows, best]
    right = window[rows, np.minimum(best + 1, window.shape[1] - 1)]
    denom = left - 2 * mid + right
    inner = (best > 0) & (best < window.shape[1] - 1) & (np.abs(denom) > 1e-9)
    shift = np.where(inner, 0.5 * (left - right) / np.where(inner, denom, 1.0), 0.0)
    period = best + low + np.clip(shift, -0.5, 0.5)
    return np.where(peak > 0.45, rate / period, 0.0).astype(np.float32)


def _onset_envelope(flux: np.ndarray, energy_db: np.ndarray) -> np.ndarray:
    """Onset strength: positive log-spectral flux plus the energy rise in dB over 30 ms, normalised to max 1."""
    level = np.maximum(energy_db.astype(np.float64), -70.0)
    rise = np.zeros(len(flux))
    rise[3:] = np.maximum(level[3:] - level[:-3], 0.0)
    # Each part scaled by a robust maximum so neither dominates; 20 ms smoothing merges split peaks.
    combined = flux / (np.percentile(flux, 99.5) + 1e-9) + rise / (np.percentile(rise, 99.5) + 1e-9)
    combined = uniform_filter1d(combined, 2)
    top = combined.max()
    return (combined / top).astype(np.float32) if top > 0 else combined.astype(np.float32)


def _pick_peaks(envelope: np.ndarray, voiced: np.ndarray, spacing: int) -> np.ndarray:
    """Local maxima over +-spacing frames, above an adaptive threshold, near speech."""
    if not np.any(voiced):
        return np.zeros(0, np.int64)
    spacing = max(1, spacing)
    local_max = envelope >= maximum_filter1d(envelope, 2 * spacing + 1)
    baseline = median_filter(envelope, size=51, mode="nearest")
    threshold = baseline + 0.08
    # An onset leads its speech by up to 50 ms (the rise happens before the energy threshold is crossed).
    near_speech = maximum_filter1d(voiced.astype(np.uint8), 11).astype(bool)
    candidates = np.flatnonzero(local_max & (envelope > threshold) & near_speech)
    # Equal neighbours (plateaus) give several candidates; keep the first of each cluster.
    kept: list[int] = []
    for index in candidates:
        if not kept or index - kept[-1] >= spacing:
            kept.append(int(index))
    return np.array(kept, dtype=np.int64)


def _onset_strengths(onsets: np.ndarray, envelope: np.ndarray, energy_db: np.ndarray, f0: np.ndarray,
                     voiced: np.ndarray) -> np.ndarray:
    """Strength in [0, 1]: onset sharpness, loudness of the following 100 ms, and pitch height."""
    if len(onsets) == 0:
        return np.zeros(0, np.float32)
    n = len(envelope)
    after = np.minimum(onsets[:, None] + np.arange(10)[None, :], n - 1)
    loudness = energy_db[after].max(axis=1).astype(np.float64)
    speech_db = energy_db[voiced] if np.any(voiced) else energy_db
    loud_ref = np.percentile(speech_db, 95)
    loud_score = np.clip((loudness - (loud_ref - 25.0)) / 25.0, 0.0, 1.0)
    pitch = f0[after].max(axis=1).astype(np.float64)
    voiced_f0 = f0[f0 > 0]
    if len(voiced_f0) > 10:
        median = np.median(voiced_f0)
        pitch_score = np.clip(0.5 + 2.5 * np.log2(np.maximum(pitch, 1.0) / median), 0.0, 1.0)
        pitch_score[pitch <= 0] = 0.3
    else:
        pitch_score = np.full(len(onsets), 0.5)
    sharp = envelope[onsets].astype(np.float64)
    score = 0.45 * sharp / max(sharp.max(), 1e-9) + 0.35 * loud_score + 0.2 * pitch_score
    return (score / max(score.max(), 1e-9)).astype(np.float32)
