"""Audio loading: formats, rates, channels, ranges, and a clear AudioError for every unusable input."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from backend.audio import SAMPLE_RATE, load_audio
from backend.errors import AudioError


def _tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    mono = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def _assert_helpful(error: AudioError, *words: str) -> None:
    message = error.message
    assert message.endswith("."), message
    assert "Traceback" not in message and "\n" not in message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    # No chained low-level exception for the CLI/server to print.
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("fmt, subtype, suffix", [("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_16", ".flac"),
                                                 ("OGG", "VORBIS", ".ogg")])
def test_formats_441k_stereo_become_16k_mono(tmp_path: Path, fmt: str, subtype: str, suffix: str) -> None:
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, _tone(2.5, 44100, channels=2), 44100, format=fmt, subtype=subtype)
    clip = load_audio(path)
    assert clip.sample_rate == SAMPLE_RATE and clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.source_sample_rate == 44100 and clip.source_channels == 2
    assert abs(clip.duration_s - 2.5) < 1e-3 and len(clip.samples) == pytest.approx(40000, abs=16)
    assert abs(_dominant_hz(clip.samples, SAMPLE_RATE) - 440.0) < 2.0
    assert 0.3 < np.max(np.abs(clip.samples)) < 0.6
    assert not clip.is_silent and clip.warnings == []


def test_mp3(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, _tone(2.0, 44100, freq=300.0, channels=2), 44100)
    mp3 = tmp_path / "tone.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "128k", str(mp3)], check=True)
    clip = load_audio(mp3)
    assert clip.source_channels == 2 and clip.source_sample_rate == 44100
    assert abs(clip.duration_s - 2.0) < 0.08  # mp3 frames pad the end
    assert abs(_dominant_hz(clip.samples, SAMPLE_RATE) - 300.0) < 2.0


def test_downmix_averages_channels(tmp_path: Path) -> None:
    stereo = np.zeros((8000, 2))
    stereo[:, 0] = _tone(0.5, 16000)
    path = tmp_path / "left_only.wav"
    soundfile.write(path, stereo, 16000, subtype="FLOAT")
    clip = load_audio(path)
    assert np.max(np.abs(clip.samples)) == pytest.approx(0.25, abs=1e-3)


def test_other_rates_resampled_polyphase(tmp_path: Path) -> None:
    for rate in (8000, 22050, 48000):
        path = tmp_path / f"tone_{rate}.wav"
        soundfile.write(path, _tone(1.0, rate, freq=1000.0), rate, subtype="FLOAT")
        clip = load_audio(path)
        assert len(clip.samples) == 16000
        assert abs(_dominant_hz(clip.samples, SAMPLE_RATE) - 1000.0) < 2.0
        # No edge transient or ringing: the level stays that of the tone (0.5) throughout.
        assert np.max(np.abs(clip.samples)) < 0.53


def test_time_range_reads_only_that_range(tmp_path: Path) -> None:
    rate = 44100
    signal = np.zeros(int(3.0 * rate))
    signal[int(1.5 * rate):int(1.6 * rate)] = 0.8  # a click block at 1.5 s
    path = tmp_path / "marker.wav"
    soundfile.write(path, signal, rate, subtype="FLOAT")
    clip = load_audio(path, start_s=1.2, end_s=2.0)
    assert abs(clip.duration_s - 0.8) < 1e-3
    first = np.flatnonzero(np.abs(clip.samples) > 0.4)[0] / SAMPLE_RATE
    assert abs(first - 0.3) < 0.002
    to_end = load_audio(path, start_s=2.5)
    assert abs(to_end.duration_s - 0.5) < 1e-3


def test_silence_is_allowed_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16000), 16000)
    clip = load_audio(path)
    assert clip.is_silent and clip.duration_s == pytest.approx(1.0)
    assert len(clip.warnings) == 1 and "silent" in clip.warnings[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as info:
        load_audio(tmp_path / "nope.wav")
    _assert_helpful(info.value, "does not exist", "check the path")


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as info:
        load_audio(tmp_path)
    _assert_helpful(info.value, "folder", ".wav")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    soundfile.write(path, _tone(0.5, 16000), 16000)
    path.chmod(0)
    try:
        with pytest.raises(AudioError) as info:
            load_audio(path)
        _assert_helpful(info.value, "permission denied", "permissions")
    finally:
        path.chmod(0o644)


def test_corrupt_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as info:
        load_audio(path)
    _assert_helpful(info.value, "not readable audio", "convert")


def test_text_file_named_mp3(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    _assert_helpful(info.value, "not readable audio")


def test_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0), 16000)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    _assert_helpful(info.value, "no samples")


@pytest.mark.parametrize("start, end, words", [
    (5.0, None, ("starts at 5", "2.00 s long")),
    (0.5, 3.0, ("ends at 3", "within the file")),
    (1.0, 1.0, ("empty", "greater than the start")),
    (1.5, 1.0, ("empty",)),
    (-1.0, None, ("start time",)),
])
def test_bad_ranges(tmp_path: Path, start: float, end: float | None, words: tuple[str, ...]) -> None:
    path = tmp_path / "two_seconds.wav"
    soundfile.write(path, _tone(2.0, 16000), 16000)
    with pytest.raises(AudioError) as info:
        load_audio(path, start_s=start, end_s=end)
    _assert_helpful(info.value, *words)


def test_range_end_rounding_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "two_seconds.wav"
    soundfile.write(path, _tone(2.0, 16000), 16000)
    assert load_audio(path, end_s=2.005).duration_s == pytest.approx(2.0)


def test_over_long_names_cap_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(path, _tone(3.0, 16000), 16000)
    with pytest.raises(AudioError) as info:
        load_audio(path, max_duration_s=2.0)
    _assert_helpful(info.value, "3.0 s", "2 s limit", "--start/--end")
    # A range under the cap is fine.
    assert load_audio(path, start_s=1.5, max_duration_s=2.0).duration_s == pytest.approx(1.5)
