"""The request contract (DESIGN.md section 3): a frozen, validated ``GenerationRequest``.

Standard library only: the add-on builds requests with it in Blender's Python, the CLI and the server
parse them. ``GenerationRequest.from_dict`` rejects unknown fields and names the field and the fix for
every invalid value; omitted fields take the defaults written here, and only here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import RequestError

Engine = Literal["procedural", "expgest"]
Mode = Literal["audio_only", "audio_phrase", "audio_text"]
TextKind = Literal["phrase", "motion", "transcript"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16"]
Behaviour = Literal["default", "faithful"]

ENGINES: tuple[str, ...] = ("procedural", "expgest")
MODES: tuple[str, ...] = ("audio_only", "audio_phrase", "audio_text")
TEXT_KINDS: tuple[str, ...] = ("phrase", "motion", "transcript")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
BEHAVIOURS: tuple[str, ...] = ("default", "faithful")
# BEAT emotion order, as the ExpGest checkpoints index them (spec section 1.7).
EMOTIONS: tuple[str, ...] = (
    "neutral", "happiness", "anger", "sadness", "contempt", "surprise", "fear", "disgust",
)
_EMOTION_ALIASES = {"netural": "neutral", "happy": "happiness", "angry": "anger", "sad": "sadness",
                    "surprised": "surprise", "afraid": "fear", "disgusted": "disgust"}
_MODE_ALIASES = {"audio_pharse": "audio_phrase"}

MAX_FPS = 240.0
MAX_STEPS = 1000


@dataclass(frozen=True)
class AudioSource:
    """Which audio to read: a file and a time range within it (seconds; ``end_s`` None = to the end)."""

    path: str
    start_s: float = 0.0
    end_s: float | None = None


@dataclass(frozen=True)
class TextAnnotation:
    """Text attached to a time range of the audio (seconds from the start of the requested range)."""

    start_s: float
    end_s: float
    text: str
    kind: TextKind = "motion"


@dataclass(frozen=True)
class EmotionSpan:
    """An emotion label with a strength in [0, 2]; ``start_s``/``end_s`` None means the whole clip."""

    label: str = "neutral"
    strength: float = 1.0
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: audio in, a Motion file out. Field meanings: DESIGN.md section 3."""

    audio: AudioSource
    output: str
    fps: float = 30.0
    engine: Engine = "procedural"
    mode: Mode = "audio_only"
    models: str | None = None
    text: tuple[TextAnnotation, ...] = ()
    emotion: tuple[EmotionSpan, ...] = (EmotionSpan(),)
    speaker: int = 0
    seed: int = 0
    steps: int = 1000
    guidance: float = 3.0
    device: Device = "auto"
    precision: Precision = "auto"
    behaviour: Behaviour = "default"
    max_duration_s: float = 1800.0

    @property
    def primary_emotion(self) -> EmotionSpan:
        """The emotion that covers the most of the clip (the first one on ties)."""
        return self.emotion[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict that ``from_dict`` reads back to an equal request."""
        data = asdict(self)
        data["text"] = [asdict(t) for t in self.text]
        data["emotion"] = [asdict(e) for e in self.emotion]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> GenerationRequest:
        """Validate and build a request from JSON-like data.

        Raises:
            RequestError: naming the first invalid or unknown field and how to fix it.
        """
        if not isinstance(data, dict):
            raise RequestError("params", "expected a JSON object with at least 'audio' and 'output'.")
        known = {f for f in cls.__dataclass_fields__}
        for key in data:
            if key not in known:
                raise RequestError(str(key), f"unknown field; valid fields are {', '.join(sorted(known))}.")
        if "audio" not in data:
            raise RequestError("audio", "missing; give {\"path\": \"/abs/file.wav\"} or a path string.")
        if "output" not in data:
            raise RequestError("output", "missing; give the path of the .npz (or .bvh) file to write.")
        kwargs: dict[str, Any] = {
            "audio": _parse_audio(data["audio"]),
            "output": _string(data["output"], "output"),
        }
        if not kwargs["output"].lower().endswith((".npz", ".bvh")):
            raise RequestError("output", "must end in .npz (SMPL-X motion) or .bvh.")
        if "fps" in data:
            kwargs["fps"] = _number(data["fps"], "fps", low=1.0, high=MAX_FPS)
        if "engine" in data:
            kwargs["engine"] = _choice(data["engine"], "engine", ENGINES)
        if "mode" in data:
            mode = data["mode"]
            mode = _MODE_ALIASES.get(mode, mode) if isinstance(mode, str) else mode
            kwargs["mode"] = _choice(mode, "mode", MODES)
        if data.get("models") is not None:
            kwargs["models"] = _string(data["models"], "models")
        if "text" in data:
            kwargs["text"] = parse_annotations(data["text"])
        if "emotion" in data:
            kwargs["emotion"] = parse_emotion(data["emotion"])
        if "speaker" in data:
            kwargs["speaker"] = _integer(data["speaker"], "speaker", low=0, high=3)
        if "seed" in data:
            kwargs["seed"] = _integer(data["seed"], "seed", low=0, high=2**63 - 1)
        if "steps" in data:
            kwargs["steps"] = _integer(data["steps"], "steps", low=1, high=MAX_STEPS)
        if "guidance" in data:
            kwargs["guidance"] = _number(data["guidance"], "guidance", low=0.0, high=20.0)
        if "device" in data:
            kwargs["device"] = _choice(data["device"], "device", DEVICES)
        if "precision" in data:
            kwargs["precision"] = _choice(data["precision"], "precision", PRECISIONS)
        if "behaviour" in data:
            kwargs["behaviour"] = _choice(data["behaviour"], "behaviour", BEHAVIOURS)
        if "max_duration_s" in data:
            kwargs["max_duration_s"] = _number(data["max_duration_s"], "max_duration_s", low=0.1, high=86400.0)
        if kwargs.get("engine") == "expgest" and not kwargs.get("models"):
            raise RequestError("models", "the expgest engine needs the folder of the released weights "
                                         "(see models/README.md), or use engine 'procedural'.")
        return cls(**kwargs)


def normalise_emotion_label(label: Any, field_name: str = "emotion.label") -> str:
    """Return the canonical BEAT emotion name for ``label`` (case-insensitive, common aliases)."""
    if not isinstance(label, str):
        raise RequestError(field_name, f"expected one of {', '.join(EMOTIONS)}.")
    key = label.strip().lower()
    key = _EMOTION_ALIASES.get(key, key)
    if key not in EMOTIONS:
        raise RequestError(field_name, f"unknown emotion {label!r}; use one of {', '.join(EMOTIONS)}.")
    return key


def parse_emotion(value: Any) -> tuple[EmotionSpan, ...]:
    """Parse ``"anger"``, ``{"label", "strength"}`` or a list of timed ``{"label", "strength", "start_s", "end_s"}``."""
    if isinstance(value, str):
        return (EmotionSpan(label=normalise_emotion_label(value)),)
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RequestError("emotion", "empty list; give at least one emotion or leave the field out.")
    spans = []
    for i, item in enumerate(items):
        where = "emotion" if not isinstance(value, list) else f"emotion[{i}]"
        if not isinstance(item, dict):
            raise RequestError(where, "expected an object like {\"label\": \"anger\", \"strength\": 1.0}.")
        for key in item:
            if key not in ("label", "strength", "start_s", "end_s"):
                raise RequestError(f"{where}.{key}", "unknown field; use label, strength, start_s, end_s.")
        label = normalise_emotion_label(item.get("label", "neutral"), f"{where}.label")
        strength = _number(item.get("strength", 1.0), f"{where}.strength", low=0.0, high=2.0)
        start = item.get("start_s")
        end = item.get("end_s")
        start = None if start is None else _number(start, f"{where}.start_s", low=0.0)
        end = None if end is None else _number(end, f"{where}.end_s", low=0.0)
        if start is not None and end is not None and end <= start:
            raise RequestError(f"{where}.end_s", "must be greater than start_s.")
        spans.append(EmotionSpan(label=label, strength=strength, start_s=start, end_s=end))
    return tuple(spans)


def parse_annotations(value: Any) -> tuple[TextAnnotation, ...]:
    """Parse a list of ``{"start_s", "end_s", "text", "kind"}``; sorted by start time."""
    if not isinstance(value, list):
        raise RequestError("text", "expected a list of {\"start_s\", \"end_s\", \"text\", \"kind\"} objects.")
    out = []
    for i, item in enumerate(value):
        where = f"text[{i}]"
        if not isinstance(item, dict):
            raise RequestError(where, "expected an object with start_s, end_s, text and kind.")
        for key in item:
            if key not in ("start_s", "end_s", "text", "kind"):
                raise RequestError(f"{where}.{key}", "unknown field; use start_s, end_s, text, kind.")
        for key in ("start_s", "end_s", "text"):
            if key not in item:
                raise RequestError(f"{where}.{key}", "missing.")
        start = _number(item["start_s"], f"{where}.start_s", low=0.0)
        end = _number(item["end_s"], f"{where}.end_s", low=0.0)
        if end <= start:
            raise RequestError(f"{where}.end_s", f"must be greater than start_s ({start}).")
        text = _string(item["text"], f"{where}.text", allow_empty=True)
        kind = _choice(item.get("kind", "motion"), f"{where}.kind", TEXT_KINDS)
        out.append(TextAnnotation(start_s=start, end_s=end, text=text, kind=kind))
    return tuple(sorted(out, key=lambda a: (a.start_s, a.end_s)))


def _parse_audio(value: Any) -> AudioSource:
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        raise RequestError("audio", "expected {\"path\": \"/abs/file.wav\", \"start_s\": 0, \"end_s\": null}.")
    for key in value:
        if key not in ("path", "start_s", "end_s"):
            raise RequestError(f"audio.{key}", "unknown field; use path, start_s, end_s.")
    if "path" not in value:
        raise RequestError("audio.path", "missing; give the audio file to read.")
    path = _string(value["path"], "audio.path")
    start = _number(value.get("start_s", 0.0) or 0.0, "audio.start_s", low=0.0)
    end = value.get("end_s")
    if end is not None:
        end = _number(end, "audio.end_s", low=0.0)
        if end <= start:
            raise RequestError("audio.end_s", f"must be greater than start_s ({start}).")
    return AudioSource(path=path, start_s=start, end_s=end)


def _string(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RequestError(name, f"expected a string, got {type(value).__name__}.")
    if not allow_empty and not value.strip():
        raise RequestError(name, "must not be empty.")
    return value


def _number(value: Any, name: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(name, f"expected a number, got {type(value).__name__}.")
    number = float(value)
    if not math.isfinite(number):
        raise RequestError(name, "must be a finite number.")
    if low is not None and number < low:
        raise RequestError(name, f"must be at least {low:g}, got {number:g}.")
    if high is not None and number > high:
        raise RequestError(name, f"must be at most {high:g}, got {number:g}.")
    return number


def _integer(value: Any, name: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RequestError(name, f"expected an integer, got {value!r}.")
    if not low <= value <= high:
        raise RequestError(name, f"must be between {low} and {high}, got {value}.")
    return int(value)


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> Any:
    if value not in choices:
        raise RequestError(name, f"must be one of {', '.join(choices)}, got {value!r}.")
    return value


__all__ = [
    "AudioSource", "TextAnnotation", "EmotionSpan", "GenerationRequest", "EMOTIONS", "ENGINES", "MODES",
    "TEXT_KINDS", "DEVICES", "parse_annotations", "parse_emotion", "normalise_emotion_label",
]
