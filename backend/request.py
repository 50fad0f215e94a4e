"""The request contract (DESIGN.md section 3): a frozen ``GenerationRequest`` that validates itself.

Standard library only: the add-on builds requests with it in Blender's Python, the CLI and the server
parse them. Every dataclass here checks its fields in ``__post_init__``, so an invalid request cannot
exist: constructing one raises ``RequestError`` naming the field and the fix. ``GenerationRequest.from_dict``
adds what only JSON needs (unknown and missing keys, indexes of list items); omitted fields take the
defaults written here, and only here. The names a request chooses between live in ``backend.vocabulary``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .errors import RequestError
from .vocabulary import (
    BEHAVIOURS,
    DEFAULT_STEPS,
    DEVICES,
    EMOTIONS,
    ENGINES,
    MAX_FPS,
    MAX_STEPS,
    MODES,
    PRECISIONS,
    TEXT_KINDS,
    Behaviour,
    Device,
    Engine,
    Mode,
    Precision,
    TextKind,
    canonical_emotion,
    canonical_mode,
    frame_count,
)


def _set(instance: Any, name: str, value: Any) -> None:
    """Store a normalised value on a frozen dataclass (inside its own ``__post_init__`` only)."""
    object.__setattr__(instance, name, value)


def normalise_emotion_label(label: Any, field_name: str = "emotion.label") -> str:
    """Return the canonical BEAT emotion name for ``label`` (case-insensitive, ``vocabulary.EMOTION_ALIASES``)."""
    if not isinstance(label, str):
        raise RequestError(field_name, f"expected one of {', '.join(EMOTIONS)}.")
    key = canonical_emotion(label)
    if key not in EMOTIONS:
        raise RequestError(field_name, f"unknown emotion {label!r}; use one of {', '.join(EMOTIONS)}.")
    return key


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


@dataclass(frozen=True)
class AudioSource:
    """Which audio to read: a file and a time range within it (seconds; ``end_s`` None = to the end)."""

    path: str
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        _string(self.path, "audio.path")
        start = _number(self.start_s, "audio.start_s", low=0.0)
        _set(self, "start_s", start)
        if self.end_s is not None:
            end = _number(self.end_s, "audio.end_s", low=0.0)
            if end <= start:
                raise RequestError("audio.end_s", f"must be greater than start_s ({start}).")
            _set(self, "end_s", end)


@dataclass(frozen=True)
class TextAnnotation:
    """Text attached to a time range of the audio (seconds from the start of the requested range)."""

    start_s: float
    end_s: float
    text: str
    kind: TextKind = "motion"

    def __post_init__(self) -> None:
        start = _number(self.start_s, "text.start_s", low=0.0)
        end = _number(self.end_s, "text.end_s", low=0.0)
        if end <= start:
            raise RequestError("text.end_s", f"must be greater than start_s ({start}).")
        _string(self.text, "text.text", allow_empty=True)
        _choice(self.kind, "text.kind", TEXT_KINDS)
        _set(self, "start_s", start)
        _set(self, "end_s", end)


@dataclass(frozen=True)
class EmotionSpan:
    """An emotion label with a strength in [0, 2]; ``start_s``/``end_s`` None means the whole clip."""

    label: str = "neutral"
    strength: float = 1.0
    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self) -> None:
        _set(self, "label", normalise_emotion_label(self.label))
        _set(self, "strength", _number(self.strength, "emotion.strength", low=0.0, high=2.0))
        start = None if self.start_s is None else _number(self.start_s, "emotion.start_s", low=0.0)
        end = None if self.end_s is None else _number(self.end_s, "emotion.end_s", low=0.0)
        if start is not None and end is not None and end <= start:
            raise RequestError("emotion.end_s", "must be greater than start_s.")
        _set(self, "start_s", start)
        _set(self, "end_s", end)


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
    steps: int = DEFAULT_STEPS
    guidance: float = 3.0
    device: Device = "auto"
    precision: Precision = "auto"
    behaviour: Behaviour = "default"
    max_duration_s: float = 1800.0

    def __post_init__(self) -> None:
        if not isinstance(self.audio, AudioSource):
            raise RequestError("audio", "expected an AudioSource (in JSON: {\"path\": \"/abs/file.wav\"}).")
        output = _string(self.output, "output")
        if not output.lower().endswith((".npz", ".bvh")):
            raise RequestError("output", "must end in .npz (SMPL-X motion) or .bvh.")
        _set(self, "fps", _number(self.fps, "fps", low=1.0, high=MAX_FPS))
        _choice(self.engine, "engine", ENGINES)
        _set(self, "mode", _choice(canonical_mode(self.mode) if isinstance(self.mode, str) else self.mode, "mode",
                                   MODES))
        if self.models is not None:
            _string(self.models, "models")
        text = tuple(self.text) if isinstance(self.text, (list, tuple)) else None
        if text is None or not all(isinstance(item, TextAnnotation) for item in text):
            raise RequestError("text", "expected a list of {\"start_s\", \"end_s\", \"text\", \"kind\"} objects.")
        _set(self, "text", tuple(sorted(text, key=lambda a: (a.start_s, a.end_s))))
        emotion = tuple(self.emotion) if isinstance(self.emotion, (list, tuple)) else None
        if emotion is None or not all(isinstance(item, EmotionSpan) for item in emotion):
            raise RequestError("emotion", "expected an emotion label or a list of {\"label\", \"strength\"} objects.")
        if not emotion:
            raise RequestError("emotion", "empty list; give at least one emotion or leave the field out.")
        _set(self, "emotion", emotion)
        _set(self, "speaker", _integer(self.speaker, "speaker", low=0, high=3))
        _set(self, "seed", _integer(self.seed, "seed", low=0, high=2**63 - 1))
        _set(self, "steps", _integer(self.steps, "steps", low=1, high=MAX_STEPS))
        _set(self, "guidance", _number(self.guidance, "guidance", low=0.0, high=20.0))
        _choice(self.device, "device", DEVICES)
        _choice(self.precision, "precision", PRECISIONS)
        _choice(self.behaviour, "behaviour", BEHAVIOURS)
        _set(self, "max_duration_s", _number(self.max_duration_s, "max_duration_s", low=0.1, high=86400.0))
        if self.engine == "expgest" and not self.models:
            raise RequestError("models", "the expgest engine needs the folder of the released weights "
                                         "(see models/README.md), or use engine 'procedural'.")

    def frame_count(self, audio_duration_s: float | None = None) -> int:
        """How many frames the result has: the one frame-count rule (``vocabulary.frame_count``) applied to
        the requested audio range at ``fps``.

        Args:
            audio_duration_s: the decoded range's duration in seconds; used only when the request reads to
                the end of the file (``audio.end_s`` None), where the range's length is not known before.

        Returns:
            ``round((end_s - start_s) * fps)``, halves up.

        Raises:
            ValueError: ``audio.end_s`` is None and no ``audio_duration_s`` was given.
        """
        if self.audio.end_s is not None:
            duration = self.audio.end_s - self.audio.start_s
        elif audio_duration_s is not None:
            duration = audio_duration_s
        else:
            raise ValueError("the request reads to the end of the file: pass the decoded audio's duration")
        return frame_count(duration, self.fps)

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
        kwargs: dict[str, Any] = {key: data[key] for key in data if key not in ("audio", "text", "emotion")}
        kwargs["audio"] = _parse_audio(data["audio"])
        if kwargs.get("models") is None:
            kwargs.pop("models", None)
        if "text" in data:
            kwargs["text"] = parse_annotations(data["text"])
        if "emotion" in data:
            kwargs["emotion"] = parse_emotion(data["emotion"])
        return cls(**kwargs)


def _renamed(error: RequestError, prefix: str, where: str) -> RequestError:
    """``error`` about field ``prefix.x`` re-addressed to ``where.x`` (``text.end_s`` -> ``text[2].end_s``)."""
    if error.field == prefix or error.field.startswith(prefix + "."):
        return RequestError(where + error.field[len(prefix):], error.reason)
    return error


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
        try:
            spans.append(EmotionSpan(**item))
        except RequestError as error:
            raise _renamed(error, "emotion", where) from None
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
        try:
            out.append(TextAnnotation(**item))
        except RequestError as error:
            raise _renamed(error, "text", where) from None
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
    return AudioSource(path=value["path"], start_s=value.get("start_s", 0.0) or 0.0, end_s=value.get("end_s"))


__all__ = [
    "AudioSource", "TextAnnotation", "EmotionSpan", "GenerationRequest", "EMOTIONS", "ENGINES", "MODES",
    "TEXT_KINDS", "DEVICES", "PRECISIONS", "BEHAVIOURS", "Behaviour", "Device", "Engine", "Mode", "Precision",
    "TextKind", "parse_annotations", "parse_emotion", "normalise_emotion_label",
]
