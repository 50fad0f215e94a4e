"""The request contract: defaults, validation messages naming the field, JSON round-trip."""

from __future__ import annotations

import pytest

from backend.errors import RequestError
from backend.request import EmotionSpan, GenerationRequest, TextAnnotation


def minimal(**extra):
    return {"audio": {"path": "/abs/a.wav"}, "output": "/abs/o.npz", **extra}


def test_defaults_and_round_trip():
    request = GenerationRequest.from_dict(minimal(emotion={"label": "Anger", "strength": 1.5},
                                                  text=[{"start_s": 2, "end_s": 5, "text": "wave", "kind": "motion"}]))
    assert request.engine == "procedural" and request.fps == 30.0 and request.steps == 1000
    assert request.emotion == (EmotionSpan("anger", 1.5),)
    assert request.text == (TextAnnotation(2.0, 5.0, "wave", "motion"),)
    assert GenerationRequest.from_dict(request.to_dict()) == request


@pytest.mark.parametrize("data, field", [
    ({"audio": "/a.wav"}, "output"),
    (minimal(bogus=1), "bogus"),
    (minimal(fps=0), "fps"),
    (minimal(fps="30"), "fps"),
    (minimal(fps=float("nan")), "fps"),
    (minimal(emotion="joy"), "emotion.label"),
    (minimal(emotion={"label": "anger", "strength": 5}), "emotion.strength"),
    (minimal(engine="magic"), "engine"),
    (minimal(engine="expgest"), "models"),
    (minimal(text=[{"start_s": 5, "end_s": 2, "text": "x"}]), "text[0].end_s"),
    (minimal(text=[{"start_s": 1, "end_s": 2, "text": "x", "kind": "dance"}]), "text[0].kind"),
    (minimal(audio={"path": "/a.wav", "start_s": 3, "end_s": 1}), "audio.end_s"),
    (minimal(output="/abs/out.txt"), "output"),
    (minimal(steps=0), "steps"),
    (minimal(speaker=7), "speaker"),
])
def test_invalid_requests_name_the_field(data, field):
    with pytest.raises(RequestError) as info:
        GenerationRequest.from_dict(data)
    assert info.value.field == field
    assert field in info.value.message


def test_mode_alias_and_emotion_aliases():
    request = GenerationRequest.from_dict(minimal(mode="audio_pharse", emotion="netural"))
    assert request.mode == "audio_phrase"
    assert request.primary_emotion.label == "neutral"
