"""Prosody analysis: onsets on synthetic bursts exactly, pitch on tones, plausible results on speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_signals import ONSETS, RATE, make_bursts  # tests/backend is on sys.path (rootdir conftest)

from backend.audio import load_audio
from backend.engines.procedural.prosody import analyse_prosody


def test_burst_onsets_found_exactly() -> None:
    prosody = analyse_prosody(make_bursts())
    assert len(prosody.onset_times) == len(ONSETS)
    assert np.max(np.abs(prosody.onset_times - np.array(ONSETS))) <= 0.02
    assert prosody.speech_segments.shape == (len(ONSETS), 2)
    assert np.allclose(prosody.speech_segments[:, 0], ONSETS, atol=0.03)
    assert np.allclose(prosody.speech_segments[:, 1] - prosody.speech_segments[:, 0], 0.16, atol=0.04)
    assert prosody.times[1] - prosody.times[0] == pytest.approx(0.01)
    assert len(prosody.energy_db) == len(prosody.times) == len(prosody.f0_hz) == len(prosody.voiced)


def test_louder_onsets_are_stronger() -> None:
    levels = [0.05, 0.5, 0.05, 0.5, 0.05, 0.5, 0.05, 0.5]
    prosody = analyse_prosody(make_bursts(levels=levels))
    assert len(prosody.onset_times) == len(ONSETS)
    loud = prosody.onset_strengths[1::2]
    quiet = prosody.onset_strengths[0::2]
    assert loud.min() > quiet.max()
    assert prosody.onset_strengths.max() == pytest.approx(1.0)


def test_minimum_spacing() -> None:
    close = (0.5, 0.58, 1.0)
    prosody = analyse_prosody(make_bursts(onsets=close, seconds=2.0, length=0.05), min_onset_spacing_s=0.12)
    assert np.all(np.diff(prosody.onset_times) >= 0.12 - 1e-9)


@pytest.mark.parametrize("f0", [110.0, 150.0, 220.0])
def test_pitch_of_harmonic_tone(f0: float) -> None:
    t = np.arange(RATE) / RATE
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)).astype(np.float32) * 0.3
    prosody = analyse_prosody(tone)
    voiced = prosody.f0_hz[10:-10]
    assert np.all(voiced > 0)
    assert abs(np.median(voiced) - f0) < 0.02 * f0


def test_silence_has_no_speech() -> None:
    prosody = analyse_prosody(np.zeros(2 * RATE, np.float32))
    assert not prosody.voiced.any() and len(prosody.onset_times) == 0
    assert prosody.pauses().tolist() == [[0.0, 2.0]]
    assert np.all(prosody.f0_hz == 0)


def test_pauses_between_bursts() -> None:
    prosody = analyse_prosody(make_bursts())
    pauses = prosody.pauses(min_pause_s=0.3)
    # Gaps before the first burst, between bursts (0.4-0.6 s), after the last.
    assert len(pauses) == len(ONSETS) + 1
    assert pauses[0][0] == 0.0 and pauses[-1][1] == pytest.approx(6.0)


def test_espeak_speech_is_plausible(speech_wav: Path) -> None:
    clip = load_audio(speech_wav)
    prosody = analyse_prosody(clip.samples)
    speech_time = float(np.sum(prosody.speech_segments[:, 1] - prosody.speech_segments[:, 0]))
    assert 0.6 * clip.duration_s < speech_time < 0.98 * clip.duration_s
    # Sentence pauses are found (three sentences, commas).
    assert len(prosody.speech_segments) >= 3
    # Syllable-rate onsets: 2.5-7 per second of speech, all inside or just before speech.
    rate = len(prosody.onset_times) / speech_time
    assert 2.5 < rate < 7.0
    f0 = prosody.f0_hz[prosody.f0_hz > 0]
    assert len(f0) > 0.3 * prosody.voiced.sum()
    assert 70.0 < np.median(f0) < 200.0  # espeak-ng's default en-us voice is a low male voice
    for t in prosody.onset_times:
        assert any(start - 0.06 <= t <= end for start, end in prosody.speech_segments)
