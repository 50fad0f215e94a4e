"""Sequencer timing and annotation rules (pure functions, no bpy)."""

from __future__ import annotations

import pytest

from blender_addon import timing


def test_trimmed_strip_plays_exact_seconds_of_the_file():
    clip = timing.clip_range(frame_start=1, frame_final_start=11, frame_final_end=101, fps=30.0)
    assert (clip.frame_start, clip.frame_end, clip.frames) == (11, 101, 90)
    assert clip.source_start_s == pytest.approx(10 / 30) and clip.source_end_s == pytest.approx(100 / 30)


def test_sound_offset_and_fractional_fps():
    fps = 30000 / 1001
    # A negative Sound Offset skips the file's first seconds; the sound then ends before an untrimmed strip.
    clip = timing.clip_range(frame_start=5.0, frame_final_start=5.0, frame_final_end=65.0, fps=fps,
                             sound_offset_s=-0.5, sound_frames=60)
    assert clip.source_start_s == pytest.approx(0.5)
    assert clip.frame_start == 5 and clip.frame_end == 5 + 60 - round(0.5 * fps) and clip.to_file_end
    assert clip.source_end_s == pytest.approx(0.5 + clip.frames / fps)


def test_a_positive_sound_offset_delays_the_sound_inside_the_strip():
    clip = timing.clip_range(frame_start=1, frame_final_start=1, frame_final_end=78, fps=30.0, sound_offset_s=0.4,
                             sound_frames=77)
    assert (clip.frame_start, clip.frame_end) == (13, 78) and not clip.to_file_end
    assert clip.source_start_s == 0.0 and clip.source_end_s == pytest.approx(65 / 30)
    trimmed = timing.clip_range(frame_start=1, frame_final_start=31, frame_final_end=78, fps=30.0,
                                sound_offset_s=0.4, sound_frames=77)
    assert trimmed.frame_start == 31 and trimmed.source_start_s == pytest.approx(18 / 30)
    silent = timing.clip_range(frame_start=1, frame_final_start=1, frame_final_end=10, fps=30.0, sound_offset_s=0.4,
                               sound_frames=77)
    assert silent.frames == 0


def test_annotation_spans_are_clipped_to_the_clip():
    clip = timing.ClipRange(frame_start=10, frame_end=100, source_start_s=0.0, source_end_s=3.0)
    assert timing.annotation_span(0, 40, clip, 30.0) == pytest.approx((0.0, 1.0))
    assert timing.annotation_span(90, 200, clip, 30.0) == pytest.approx((80 / 30, 90 / 30))
    assert timing.annotation_span(100, 120, clip, 30.0) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("motion: a person walks", ("motion", "a person walks")),
    ("Phrase:Kick, Forwards Walking", ("phrase", "Kick, Forwards Walking")),
    ("TRANSCRIPT : hello there", ("transcript", "hello there")),
    ("waves: both hands", ("motion", "waves: both hands")),
    ("   ", None),
    ("phrase:", None),
])
def test_prefix_decides_the_kind(text, expected):
    assert timing.parse_annotation(text, "motion") == expected


def test_take_numbers_continue_after_the_highest_existing_take():
    names = [timing.take_name("Bob", "line 1", 1), timing.take_name("Bob", "line 1", 3) + ".001",
             timing.take_name("Bob", "line 2", 7), "unrelated"]
    assert timing.next_take_number(names, "Bob", "line 1") == 4
    assert timing.next_take_number(names, "Ann", "line 1") == 1
    assert timing.take_name("Bob", "line 1", 4) == "Bob_line_1_take4"


@pytest.mark.parametrize(("raw", "safe"), [
    ("SMPLX", "SMPLX"), ("line.wav", "line"), ("Bob \u00b7 take 1", "Bob_take_1"), ("a.b/c:d", "a_b_c_d"),
    ("Персонаж 1", "Персонаж_1"), ("...", "take"), ("mix-02.final.flac", "mix-02_final"),
])
def test_take_names_are_safe_export_clip_names(raw, safe):
    assert timing.safe_name(raw) == safe


def test_take_names_fit_blenders_63_bytes_and_keep_counting():
    character, strip = "Character_With_A_Long_Name", "dialogue_line_042_final_mix_for_the_trailer.wav"
    names = []
    for number in (1, 2, 10, 9999):
        name = timing.take_name(character, strip, number)
        assert len(name.encode()) <= timing.NAME_BYTES and name.endswith(f"_take{number}")
        assert name == timing.safe_name(name)
        names.append(name)
    assert timing.next_take_number(names, character, strip) == 10000
    assert timing.take_name("Bob", "line 1", 2) == "Bob_line_1_take2"  # short names stay whole
    wide = timing.take_name("Персонаж_с_длинным_именем", "реплика_номер_сорок_два", 3)  # two bytes a letter
    assert len(wide.encode()) <= timing.NAME_BYTES
    wide.encode().decode()  # never cut inside a character
