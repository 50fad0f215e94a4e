"""Timed text annotations: parsing (CLI and request), validation against the audio, edge cases."""

from __future__ import annotations

import pytest

from backend.commands.generate import parse_text_option
from backend.errors import RequestError
from backend.pipeline import check_annotations
from backend.request import TextAnnotation, parse_annotations


def test_cli_text_option_with_and_without_kind():
    assert parse_text_option("8.0-14.0:a person walks back and forth", "motion") == {
        "start_s": 8.0, "end_s": 14.0, "text": "a person walks back and forth", "kind": "motion"}
    assert parse_text_option("2-5: phrase: Kick, Forwards Walking", "motion")["kind"] == "phrase"
    assert parse_text_option("2-5:ratio: 3:2", "motion")["text"] == "ratio: 3:2"  # not a kind prefix
    with pytest.raises(RequestError, match="START-END:TEXT"):
        parse_text_option("walk", "motion")


def test_annotations_sorted_and_non_ascii_kept():
    parsed = parse_annotations([{"start_s": 5, "end_s": 6, "text": "zwei Schritte zurück"},
                                {"start_s": 1, "end_s": 2, "text": "走来走去", "kind": "motion"}])
    assert [a.start_s for a in parsed] == [1.0, 5.0]
    assert parsed[0].text == "走来走去"


def test_empty_text_is_allowed_and_means_no_text_guidance():
    (annotation,) = parse_annotations([{"start_s": 0, "end_s": 1, "text": ""}])
    assert annotation.text == ""


def test_range_past_the_end_is_clipped_with_a_warning():
    kept, warnings = check_annotations((TextAnnotation(2.0, 30.0, "walk"),), duration_s=10.0)
    assert kept == (TextAnnotation(2.0, 10.0, "walk"),)
    assert len(warnings) == 1 and "shortened" in warnings[0]


def test_range_starting_after_the_audio_is_an_error_naming_it():
    with pytest.raises(RequestError) as info:
        check_annotations((TextAnnotation(1.0, 2.0, "a"), TextAnnotation(12.0, 14.0, "b")), duration_s=10.0)
    assert info.value.field == "text[1].start_s"


def test_overlapping_ranges_warn():
    kept, warnings = check_annotations((TextAnnotation(1.0, 5.0, "walk"), TextAnnotation(4.0, 8.0, "sit")),
                                       duration_s=10.0)
    assert len(kept) == 2 and any("overlap" in w for w in warnings)
    # transcripts may overlap motion annotations: they describe the words, not the body
    _, warnings = check_annotations((TextAnnotation(1.0, 5.0, "walk"),
                                     TextAnnotation(2.0, 3.0, "hello", "transcript")), duration_s=10.0)
    assert not warnings


def test_long_texts_are_shortened_at_a_word_in_messages():
    long_text = "a person walks back and forth across the whole stage very slowly"
    _, warnings = check_annotations((TextAnnotation(1.0, 5.0, long_text), TextAnnotation(4.0, 8.0, "sit")),
                                    duration_s=10.0)
    assert "'a person walks back and forth across the…'" in warnings[0]
