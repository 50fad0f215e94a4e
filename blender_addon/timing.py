"""Sequencer timing and annotation rules: pure Python, no bpy (tested in a plain interpreter).

Frames are the sequencer's (scene) frames; seconds are measured in the sound file (``source``) or from the
start of the part of the sound strip that plays (``clip``). ``scene.py`` reads the strips and calls these.
"""

from __future__ import annotations

from dataclasses import dataclass

from .backend.vocabulary import TEXT_KINDS as ANNOTATION_KINDS


@dataclass(frozen=True)
class ClipRange:
    """The part of a sound strip where its sound plays.

    Attributes:
        frame_start: first scene frame where the sound plays.
        frame_end: the frame after the last one where it plays.
        source_start_s: seconds into the sound file at ``frame_start``.
        source_end_s: seconds into the sound file at ``frame_end``.
        to_file_end: the clip plays the file to its end (its end frame is the sound's, rounded up).
    """

    frame_start: int
    frame_end: int
    source_start_s: float
    source_end_s: float
    to_file_end: bool = False

    @property
    def frames(self) -> int:
        """Number of scene frames that play."""
        return self.frame_end - self.frame_start


def clip_range(frame_start: float, frame_final_start: float, frame_final_end: float, fps: float,
               sound_offset_s: float = 0.0, sound_frames: float | None = None) -> ClipRange:
    """Which seconds of the sound file a sound strip plays, and at which scene frames.

    A strip's content starts at ``frame_start`` (which may lie before the visible part when the strip is
    trimmed on the left); ``frame_final_start`` / ``frame_final_end`` bound what is visible. Blender 4.x
    adds ``sound_offset``, which *delays* the sound inside the strip (measured on 4.5 and 5.0 with a
    mixdown: an offset of +0.4 s starts the file 0.4 s after the strip's start, -0.4 s skips its first
    0.4 s). So the file time at scene frame ``f`` is ``(f - frame_start) / fps - sound_offset``, and the
    sound plays only where that lies inside the file (``sound_frames``, the strip's ``frame_duration``).

    Args:
        frame_start: the strip's ``frame_start`` (frames, may be fractional in 5.0).
        frame_final_start: ``frame_final_start`` (frames).
        frame_final_end: ``frame_final_end`` (frames, exclusive).
        fps: scene frame rate, ``render.fps / render.fps_base``.
        sound_offset_s: ``strip.sound_offset`` (seconds; 0 where the property does not exist).
        sound_frames: the sound's length in scene frames (``frame_duration``); None: not clipped to it.

    Returns:
        The clip range; frames rounded to whole frames. It is empty (``frames <= 0``) when the sound does
        not play in the visible part of the strip.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    sound_first = frame_start + sound_offset_s * fps  # scene frame where the file's first sample plays
    first = int(round(max(frame_final_start, sound_first)))
    last = int(round(frame_final_end))
    to_file_end = False
    if sound_frames is not None:
        sound_last = sound_first + sound_frames
        to_file_end = frame_final_end >= sound_last - 1e-6
        last = min(last, int(round(sound_last)))
    start_s = max(0.0, (first - frame_start) / fps - sound_offset_s)
    end_s = start_s + max(0, last - first) / fps
    return ClipRange(frame_start=first, frame_end=max(first, last), source_start_s=start_s, source_end_s=end_s,
                     to_file_end=to_file_end)


def annotation_span(text_start: float, text_end: float, clip: ClipRange, fps: float) -> tuple[float, float] | None:
    """Seconds (from the clip's start) that a text strip covers, clipped to the clip; None if no overlap.

    Args:
        text_start: the text strip's ``frame_final_start``.
        text_end: its ``frame_final_end`` (exclusive).
        clip: the sound clip it annotates.
        fps: scene frame rate.

    Returns:
        ``(start_s, end_s)`` with ``0 <= start_s < end_s <= clip duration``, or None.
    """
    start = max(text_start, clip.frame_start)
    end = min(text_end, clip.frame_end)
    if end <= start:
        return None
    return (start - clip.frame_start) / fps, (end - clip.frame_start) / fps


def parse_annotation(text: str, default_kind: str) -> tuple[str, str] | None:
    """Split an annotation into its kind and text: ``"motion: walks away"`` -> ``("motion", "walks away")``.

    A prefix (case-insensitive) among ``motion:``, ``phrase:``, ``transcript:`` decides the kind; otherwise
    the channel's default kind applies.

    Args:
        text: the text strip's text.
        default_kind: one of ``ANNOTATION_KINDS``.

    Returns:
        ``(kind, text)``, or None when the text is empty.
    """
    if default_kind not in ANNOTATION_KINDS:
        raise ValueError(f"default_kind must be one of {ANNOTATION_KINDS}, got {default_kind!r}")
    stripped = text.strip()
    head, sep, rest = stripped.partition(":")
    if sep and head.strip().lower() in ANNOTATION_KINDS:
        kind, stripped = head.strip().lower(), rest.strip()
    else:
        kind = default_kind
    return (kind, stripped) if stripped else None


NAME_BYTES = 63  # what an NLA track or strip name holds (and any ID name before Blender 5.0): 64 bytes with the NUL
_TAKE_SUFFIX_BYTES = len(b"_take9999")  # room kept for the take number, so the prefix never moves
_AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".m4a", ".aac", ".opus",
                     ".mp4", ".mov", ".mkv")


def safe_name(text: str) -> str:
    """``text`` as a name that survives every export format's clip names: letters, digits, ``-`` and ``_``.

    Spaces, dots and other punctuation become one ``_`` (glTF, FBX and game engines treat dots and some
    symbols specially); letters of any script stay. A sound file's extension is dropped (``line 01.wav`` ->
    ``line_01``). Empty results become ``take``.
    """
    stem = text.strip()
    for extension in _AUDIO_EXTENSIONS:
        if stem.lower().endswith(extension) and len(stem) > len(extension):
            stem = stem[:-len(extension)]
            break
    out = "".join(c if (c.isalnum() or c == "-") else "_" for c in stem)
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_") or "take"


def _fit(text: str, size: int) -> str:
    """``text`` in at most ``size`` UTF-8 bytes: cut in the middle at character boundaries, joined by ``-``
    (the ends usually tell takes apart: ``line_01`` / ``line_02``, ``Bob`` / ``Bob_001``)."""
    if len(text.encode()) <= size:
        return text
    head, tail = text[:len(text) // 2], text[len(text) // 2:]
    while head + tail and len((head + "-" + tail).encode()) > size:
        if len(head.encode()) * 2 >= len(tail.encode()) * 3 or not tail:  # keep about 3/5 head, 2/5 tail
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + "-" + tail


def take_name(character: str, strip: str, number: int) -> str:
    """The name of a take's Action, NLA track and strip: ``"<character>_<strip>_take<N>"``, export-safe.

    Both parts go through ``safe_name``. Blender cuts longer names at 63 bytes, possibly inside a multi-byte
    character (the name then cannot be read back), so long names are shortened here; the take number is
    always kept whole.
    """
    character, strip = safe_name(character), safe_name(strip)
    room = NAME_BYTES - _TAKE_SUFFIX_BYTES - 1
    if len(character.encode()) + len(strip.encode()) > room:
        half = room // 2
        character_room = max(half, room - len(strip.encode()))
        character = _fit(character, character_room)
        strip = _fit(strip, room - len(character.encode()))
    return f"{character}_{strip}_take{number}"


def next_take_number(existing_names: list[str] | tuple[str, ...], character: str, strip: str) -> int:
    """One more than the highest take number among names made by ``take_name`` for this pair (1 if none).

    Blender may append ``.001`` to a duplicate name; that suffix is ignored.
    """
    prefix = take_name(character, strip, 0)[:-1]
    highest = 0
    for name in existing_names:
        if not name.startswith(prefix):
            continue
        number = name[len(prefix):].split(".")[0]
        if number.isdigit():
            highest = max(highest, int(number))
    return highest + 1
