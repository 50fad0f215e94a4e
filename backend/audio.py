"""Audio loading: any file libsndfile reads (wav, flac, ogg, mp3 …), a time range of it, as 16 kHz mono.

Only the requested range is decoded (the file is seeked to the range start, plus a few milliseconds of
context for the resampling filter). Every way the audio can be unusable raises ``AudioError`` with one
sentence that says what is wrong and what to do; silence is allowed and reported as a warning.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import firwin, resample_poly

from .errors import AudioError
from .vocabulary import SAMPLE_RATE

DEFAULT_MAX_DURATION_S = 1800.0
# A range end this far past the end of the file is read as "to the end" (rounding in the caller's times).
_END_TOLERANCE_S = 0.01
# Source samples of context read on each side of the range, so the resampling filter has no edge transient.
_CONTEXT_SAMPLES = 2048
# Below this peak level (about -80 dBFS) a clip counts as silent.
_SILENCE_PEAK = 1e-4
_READ_BLOCK = 1 << 20  # source frames decoded at a time


@dataclass
class AudioClip:
    """Decoded audio, ready for the engines.

    Attributes:
        samples: (N,) float32 mono waveform at ``sample_rate``, in [-1, 1].
        sample_rate: always 16000 Hz.
        duration_s: ``N / sample_rate`` seconds: the length of the requested range.
        source_sample_rate: the file's sample rate in Hz.
        source_channels: the file's channel count (downmixed to mono by averaging).
        is_silent: True when the range holds no audible signal (peak under -80 dBFS).
        warnings: full sentences for the user about things that were allowed but may be unexpected.
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    duration_s: float = 0.0
    source_sample_rate: int = SAMPLE_RATE
    source_channels: int = 1
    is_silent: bool = False
    warnings: list[str] = field(default_factory=list)


def load_audio(path: str | os.PathLike[str], start_s: float = 0.0, end_s: float | None = None,
               max_duration_s: float = DEFAULT_MAX_DURATION_S,
               cancel: Callable[[], None] | None = None) -> AudioClip:
    """Read ``[start_s, end_s)`` of an audio file as 16 kHz mono float32.

    Args:
        path: the audio file (anything libsndfile reads: wav, flac, ogg/vorbis, mp3, aiff …).
        start_s: range start in seconds from the beginning of the file (>= 0).
        end_s: range end in seconds; None = the end of the file.
        max_duration_s: the longest range accepted, in seconds.
        cancel: called between blocks of decoding and resampling (about every 0.1 s of work); it raises to
            stop (``CancelToken.check``), so a cancel is honoured while a long file is read.

    Returns:
        The decoded clip; ``samples`` has ``round((end_s - start_s) * 16000)`` samples (up to one sample of
        rounding in the source rate).

    Raises:
        AudioError: the file is missing, a folder, not audio or corrupt, empty, the range is empty or beyond
            the end of the file, or the range is longer than ``max_duration_s``.
    """
    file_path = Path(path)
    _check_request(file_path, start_s, end_s)
    try:
        handle = soundfile.SoundFile(str(file_path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"The file '{file_path}' is not readable audio ({_short(error)}); convert it to .wav, "
                         ".flac, .ogg or .mp3 and try again.") from None
    with handle:
        rate = int(handle.samplerate)
        channels = int(handle.channels)
        start, stop = _sample_range(file_path, int(handle.frames), rate, start_s, end_s, max_duration_s)
        read_from = max(0, start - _CONTEXT_SAMPLES)
        read_to = min(int(handle.frames), stop + _CONTEXT_SAMPLES)
        mono, filled = _read_mono(handle, file_path, read_to - read_from, read_from, channels, cancel)
    if filled == 0:
        raise AudioError(f"The audio file '{file_path}' contains no samples; record or export the audio again.")
    truncated = filled < len(mono)
    if truncated:  # the header promised more frames than the file holds
        mono[filled:] = 0.0
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"The file '{file_path}' holds invalid (NaN or infinite) samples; export it again "
                         "as 16- or 24-bit .wav.")
    samples = _resample_range(mono, rate, start - read_from, stop - start, cancel)
    clip = AudioClip(samples=samples, sample_rate=SAMPLE_RATE, duration_s=len(samples) / SAMPLE_RATE,
                     source_sample_rate=rate, source_channels=channels)
    missing = (stop - read_from) - filled  # source samples of the range that could not be read
    if truncated and missing > 0:
        clip.warnings.append(f"The file '{file_path.name}' ended {missing / rate:.2f} s early (it looks truncated); "
                             "the missing part is treated as silence.")
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if peak < _SILENCE_PEAK:
        clip.is_silent = True
        clip.warnings.append(f"The audio range of '{file_path.name}' is silent; the character will only idle "
                             "(check the file or the range if speech was expected).")
    if peak > 1.0:
        np.clip(samples, -1.0, 1.0, out=samples)
    return clip


def _check_request(file_path: Path, start_s: float, end_s: float | None) -> None:
    """Refuse a missing, unreadable or empty file and an invalid range before opening anything."""
    if not file_path.exists():
        raise AudioError(f"The audio file '{file_path}' does not exist; check the path (or the sound strip's "
                         "file) and try again.")
    if file_path.is_dir():
        raise AudioError(f"The audio path '{file_path}' is a folder, not a file; give the path of a "
                         ".wav, .flac, .ogg or .mp3 file inside it.")
    if not os.access(file_path, os.R_OK):
        raise AudioError(f"The audio file '{file_path}' cannot be read (permission denied); check the file's "
                         "permissions or copy it somewhere readable.")
    if file_path.stat().st_size == 0:
        raise AudioError(f"The audio file '{file_path}' is empty (0 bytes); export the audio again or choose "
                         "another file.")
    if not (math.isfinite(start_s) and start_s >= 0.0):
        raise AudioError(f"The audio start time {start_s} s is invalid; give a start of 0 s or more.")
    if end_s is not None and not math.isfinite(end_s):
        raise AudioError(f"The audio end time {end_s} s is invalid; give a finite end or none for the end of "
                         "the file.")
    if end_s is not None and end_s <= start_s:
        raise AudioError(f"The audio range {start_s:g}–{end_s:g} s is empty; give an end time greater than the "
                         "start time.")


def _sample_range(file_path: Path, total: int, rate: int, start_s: float, end_s: float | None,
                  max_duration_s: float) -> tuple[int, int]:
    """The requested range as source sample indices ``[start, stop)``, checked against the file's length."""
    if total <= 0 or rate <= 0:
        raise AudioError(f"The audio file '{file_path}' contains no samples; record or export the audio "
                         "again.")
    file_duration = total / rate
    start = int(round(start_s * rate))
    if start >= total:
        raise AudioError(f"The audio range starts at {start_s:g} s but '{file_path.name}' is only "
                         f"{file_duration:.2f} s long; give a start time before the end of the file.")
    if end_s is None:
        stop = total
    elif end_s > file_duration + _END_TOLERANCE_S:
        raise AudioError(f"The audio range ends at {end_s:g} s but '{file_path.name}' is only "
                         f"{file_duration:.2f} s long; give an end time within the file or none for the end.")
    else:
        stop = min(total, int(round(end_s * rate)))
    if stop <= start:
        raise AudioError(f"The audio range {start_s:g}–{end_s:g} s holds no samples at {rate} Hz; give a "
                         "longer range.")
    duration = (stop - start) / rate
    if duration > max_duration_s + 1e-9:
        raise AudioError(f"The audio range is {duration:.1f} s long, over the {max_duration_s:g} s limit; "
                         "trim the audio or choose a shorter range with --start/--end (audio start_s/end_s).")
    return start, stop


def _read_mono(handle: soundfile.SoundFile, file_path: Path, length: int, read_from: int, channels: int,
               cancel: Callable[[], None] | None) -> tuple[np.ndarray, int]:
    """Decode ``length`` frames from ``read_from`` as mono float32; returns the buffer and the frames filled.

    Reads in blocks and downmixes as it goes, so a long multichannel file never sits in memory whole; ``cancel``
    is called before each block.
    """
    mono = np.empty(length, np.float32)
    filled = 0
    try:
        handle.seek(read_from)
        while filled < len(mono):
            if cancel is not None:
                cancel()
            block = handle.read(min(_READ_BLOCK, len(mono) - filled), dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            # Average the channels column by column (numpy's mean over a short last axis is slow).
            chunk = mono[filled:filled + block.shape[0]]
            chunk[:] = block[:, 0]
            for channel in range(1, channels):
                chunk += block[:, channel]
            if channels > 1:
                chunk *= np.float32(1.0 / channels)
            filled += block.shape[0]
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"The file '{file_path}' could not be decoded ({_short(error)}); it may be "
                         "truncated or corrupt; export it again as .wav or .flac.") from None
    return mono, filled


def _resample_range(mono: np.ndarray, rate: int, offset: int, count: int,
                    cancel: Callable[[], None] | None = None) -> np.ndarray:
    """Resample ``mono`` (with context) to 16 kHz and cut out ``count`` source samples from ``offset``."""
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono[offset:offset + count], dtype=np.float32)
    divisor = math.gcd(SAMPLE_RATE, rate)
    up, down = SAMPLE_RATE // divisor, rate // divisor
    resampled = _resample_blocks(mono, up, down, cancel)
    # Source sample i lands at output position i * up / down.
    first = int(round(offset * up / down))
    length = int(round(count * SAMPLE_RATE / rate))
    out = resampled[first:first + length]
    if len(out) < length:  # rounding at the very end of the file
        out = np.concatenate([out, np.zeros(length - len(out))])
    return np.ascontiguousarray(out, dtype=np.float32)


_RESAMPLE_BLOCK = 1 << 21  # source samples per resampling block (about 50 ms of work)


def _resample_blocks(mono: np.ndarray, up: int, down: int, cancel: Callable[[], None] | None) -> np.ndarray:
    """``resample_poly(mono, up, down)`` with scipy's default filter, in blocks with ``cancel`` between them.

    Each block starts at a multiple of ``down`` source samples, so its outputs sit on the same grid as the
    whole signal's, and carries ``margin`` samples of context on both sides, more than the filter reaches:
    its kept outputs are the same sums of the same products as one call over the whole signal.
    """
    window = _polyphase_filter(up, down)
    if len(mono) <= _RESAMPLE_BLOCK or cancel is None:
        return resample_poly(mono, up, down, window=window)
    margin = ((len(window) // up + 2 * down) // down + 1) * down
    block = (_RESAMPLE_BLOCK // down) * down
    total = -(-len(mono) * up // down)  # resample_poly's output length: ceil(n * up / down)
    out = np.empty(total, dtype=np.float32)
    for begin in range(0, len(mono), block):
        cancel()
        end = min(len(mono), begin + block)
        lo = max(0, begin - margin)
        hi = min(len(mono), end + margin)
        part = resample_poly(mono[lo:hi], up, down, window=window)
        first = (begin - lo) * up // down
        out_begin = begin * up // down
        out_end = total if end == len(mono) else end * up // down
        out[out_begin:out_end] = part[first:first + out_end - out_begin]
    return out


@functools.lru_cache(maxsize=8)
def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """scipy's default ``resample_poly`` low-pass (Kaiser, beta 5, 10 zero crossings per side), in float32 so
    the filtering runs in single precision."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    # libsndfile prefixes messages with "Error opening '<path>': "; keep the reason only.
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    return text.rstrip(".")
