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
    clip = timing.clip_range(frame_start=5.0, frame_final_start=5.0, frame_final_end=65.0, fps=fps,
                             sound_offset_s=1.25)
    assert clip.source_start_s == pytest.approx(1.25)
    assert clip.source_end_s == pytest.approx(1.25 + 60 / fps)


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
    assert timing.take_name("Bob", "line 1", 4) == "Bob \u00b7 line 1 \u00b7 take 4"
