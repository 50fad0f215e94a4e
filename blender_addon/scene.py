"""Reading the Video Sequencer and planning generations (bpy; no writes to the scene).

Everything here reads: sound strips (file, trims, offsets -> exact seconds in the file), text strips of an
annotation channel (-> timed annotations), the character's settings; it produces ``PlannedGeneration``
records (``jobs.py``) that carry a validated ``GenerationRequest``. Packed sounds are written to a
temporary file, which the run deletes when it is over.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass

import bpy

from . import timing
from .backend import vocabulary
from .backend.request import AudioSource, EmotionSpan, GenerationRequest, TextAnnotation
from .jobs import PlannedGeneration

# Sampler steps per Quality menu item (its identifiers are the vocabulary's presets in upper case).
QUALITY_STEPS = {name.upper(): steps for name, steps in vocabulary.QUALITY_STEPS.items()}


class SceneError(Exception):
    """Something in the scene prevents a generation; the message says what to change."""


@dataclass(frozen=True)
class SoundStripInfo:
    """A sound strip as the add-on sees it.

    Attributes:
        name: the strip's name.
        channel: its channel.
        muted: muted itself or through its channel.
        clip: scene frames and file seconds that play.
    """

    name: str
    channel: int
    muted: bool
    clip: timing.ClipRange
    to_file_end: bool


@dataclass(frozen=True)
class Settings:
    """One character's settings, read from ``object.expgest`` (a frozen copy, HOUSE_STYLE 3).

    A take stores these (with the seed it used) on its Action, so **Generate Again** can re-run it exactly.
    """

    sound_strip: str
    text_channel: int
    annotation_kind: str
    emotion: str
    emotion_strength: float
    engine: str
    mode: str
    seed: int
    quality: str
    speaker: int
    lock_seed: bool = False
    scope: str = "FULL"
    blend: str = "REPLACE"
    influence: float = 1.0
    reduce_keys: bool = True
    tolerance_deg: float = 0.5
    tolerance_mm: float = 1.0
    to_quaternion: bool = False

    @classmethod
    def from_object(cls, obj: bpy.types.Object) -> Settings:
        """Copy ``obj.expgest``."""
        props = obj.expgest
        return cls(sound_strip=props.sound_strip, text_channel=int(props.text_channel),
                   annotation_kind=props.annotation_kind.lower(), emotion=props.emotion.lower(),
                   emotion_strength=float(props.emotion_strength), engine=props.engine.lower(),
                   mode=props.mode, seed=int(props.seed), quality=props.quality, speaker=int(props.speaker),
                   lock_seed=bool(props.lock_seed), scope=props.scope, blend=props.blend,
                   influence=float(props.influence), reduce_keys=bool(props.reduce_keys),
                   tolerance_deg=math.degrees(props.tolerance_rotation),
                   tolerance_mm=float(props.tolerance_location) * 1000.0,
                   to_quaternion=props.rotation == "QUATERNION")

    def to_take(self) -> dict:
        """As stored on a take's Action (``action["expgest_take"]``): plain str / int / float values."""
        out = {}
        for name, value in dataclasses.asdict(self).items():
            out[name] = int(value) if isinstance(value, bool) else value
        return out

    @classmethod
    def from_take(cls, stored) -> Settings:
        """Read what ``to_take`` stored (an ID property group); fields a take lacks take their defaults.

        Raises:
            SceneError: when the take carries no settings (not made by this add-on, or damaged).
        """
        if stored is None:
            raise SceneError("This take carries no generation settings (it was not made by ExpGest, or they were "
                             "removed), so it cannot be generated again.")
        values = {}
        for item in dataclasses.fields(cls):
            if item.name not in stored:
                if item.default is dataclasses.MISSING:
                    raise SceneError(f"This take's settings lack '{item.name}'; it cannot be generated again.")
                continue
            kind = {"int": int, "float": float, "bool": bool, "str": str}[item.type]
            values[item.name] = kind(stored[item.name])
        return cls(**values)

    def take_options(self):
        """How the take is written (``keyframes.TakeOptions``)."""
        from . import channels, keyframes

        tolerance = channels.Tolerance(rotation_deg=self.tolerance_deg, location_m=self.tolerance_mm / 1000.0)
        return keyframes.TakeOptions(scope=self.scope, blend=self.blend, influence=self.influence,
                                     reduce=tolerance if self.reduce_keys else None,
                                     to_quaternion=self.to_quaternion)


def sequencer_scene(context: bpy.types.Context) -> bpy.types.Scene:
    """The scene whose sequencer holds the dialogue: 5.0's ``context.sequencer_scene`` if it has strips."""
    seq_scene = getattr(context, "sequencer_scene", None)
    if seq_scene is not None and seq_scene.sequence_editor is not None:
        return seq_scene
    return context.scene


def scene_fps(scene: bpy.types.Scene) -> float:
    """Frames per second, ``render.fps / render.fps_base``."""
    return scene.render.fps / scene.render.fps_base


def _all_strips(scene: bpy.types.Scene) -> list:
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def _muted(scene: bpy.types.Scene, strip) -> bool:
    channels = scene.sequence_editor.channels
    channel_muted = strip.channel < len(channels) and channels[strip.channel].mute
    return bool(strip.mute or channel_muted)


def sound_strips(scene: bpy.types.Scene) -> list[SoundStripInfo]:
    """Every sound strip of ``scene``'s sequencer (muted ones included, flagged), by start frame."""
    fps = scene_fps(scene)
    out = []
    for strip in _all_strips(scene):
        if strip.type != "SOUND":
            continue
        # Blender rounds a sound's length up to whole frames, so an untrimmed end lies up to a frame past
        # the end of the file: the clip then asks for "to the end", and the result is fitted to its frames.
        clip = timing.clip_range(strip.frame_start, strip.frame_final_start, strip.frame_final_end, fps,
                                 float(getattr(strip, "sound_offset", 0.0)), sound_frames=strip.frame_duration)
        out.append(SoundStripInfo(name=strip.name, channel=strip.channel, muted=_muted(scene, strip), clip=clip,
                                  to_file_end=clip.to_file_end))
    return sorted(out, key=lambda s: (s.clip.frame_start, s.channel, s.name))


def _find_strip(scene: bpy.types.Scene, name: str):
    for strip in _all_strips(scene):
        if strip.name == name:
            return strip
    return None


def choose_sound_strip(scene: bpy.types.Scene, settings: Settings, character: str) -> SoundStripInfo:
    """The strip a character speaks: its assigned strip, else the scene's only unmuted sound strip.

    Raises:
        SceneError: when the assigned strip is missing or muted, or no single strip can be chosen.
    """
    strips = sound_strips(scene)
    if settings.sound_strip:
        match = next((s for s in strips if s.name == settings.sound_strip), None)
        other = _find_strip(scene, settings.sound_strip) if match is None else None
        if other is not None:
            raise SceneError(f"'{character}': '{settings.sound_strip}' is a {other.type.lower()} strip, not a sound "
                             "strip; pick the character's dialogue in the Sound Strip field.")
        if match is None:
            raise SceneError(f"'{character}': its sound strip '{settings.sound_strip}' is not in the sequencer of "
                             f"scene '{scene.name}'; pick another strip in the Gestures panel.")
        if match.muted:
            raise SceneError(f"'{character}': its sound strip '{match.name}' is muted; unmute it or pick another.")
        return match
    unmuted = [s for s in strips if not s.muted]
    if len(unmuted) == 1:
        return unmuted[0]
    if not unmuted:
        raise SceneError(f"'{character}': scene '{scene.name}' has no unmuted sound strip; add the dialogue "
                         "audio to the Video Sequencer (Add > Sound).")
    raise SceneError(f"'{character}': the sequencer has {len(unmuted)} sound strips; pick this character's strip "
                     "in the Gestures panel.")


def resolve_audio_file(scene: bpy.types.Scene, strip_name: str, temp_dir: str) -> tuple[str, tuple[str, ...]]:
    """The absolute path of a strip's sound file; a packed sound is written to ``temp_dir`` first.

    Returns:
        (path, temporary files created).

    Raises:
        SceneError: when the file is missing.
    """
    strip = _find_strip(scene, strip_name)
    sound = strip.sound
    if sound is None:
        raise SceneError(f"Sound strip '{strip_name}' has no sound data; remove it and add the audio again.")
    if sound.packed_file is not None:
        extension = os.path.splitext(bpy.path.basename(sound.filepath))[1] or ".wav"
        path = os.path.join(temp_dir, f"packed_{len(os.listdir(temp_dir))}{extension}")
        try:
            with open(path, "wb") as handle:
                handle.write(bytes(sound.packed_file.data))
        except OSError as error:  # a full disk: the run's folder is removed with the failed run
            raise SceneError(f"Sound strip '{strip_name}': its packed sound could not be written to the temporary "
                             f"folder ({error.strerror or error}); {TEMP_FOLDER_FIX}") from None
        if extension.lower() not in BACKEND_AUDIO_EXTENSIONS:
            decoded = _decode_with_blender(path, strip_name, temp_dir)
            return decoded, (path, decoded)
        return path, (path,)
    path = os.path.normpath(bpy.path.abspath(sound.filepath, library=sound.library))
    if not os.path.isfile(path):
        raise SceneError(f"Sound strip '{strip_name}': its file '{path}' is missing; relink it or save the .blend "
                         "next to its audio.")
    if os.path.splitext(path)[1].lower() not in BACKEND_AUDIO_EXTENSIONS:
        decoded = _decode_with_blender(path, strip_name, temp_dir)
        return decoded, (decoded,)
    return path, ()


# What the backend reads itself (libsndfile); other sounds Blender plays (AAC in .m4a, a movie's audio) are
# decoded by Blender's own Audaspace first.
BACKEND_AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"})


def _decode_with_blender(path: str, strip_name: str, temp_dir: str) -> str:
    """The samples Blender plays for ``path`` (``aud.Sound.data()``), as a 16-bit WAV file in ``temp_dir``."""
    import wave

    import aud
    import numpy as np

    try:
        sound = aud.Sound(path)
        rate = int(round(sound.specs[0]))
        samples = np.asarray(sound.data(), dtype=np.float32)
    except Exception as error:  # aud raises its own aud.error
        raise SceneError(f"Sound strip '{strip_name}': Blender cannot decode '{path}' ({error}); convert it to "
                         ".wav and add it again.") from error
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.size == 0:
        raise SceneError(f"Sound strip '{strip_name}': '{path}' holds no audio samples.")
    output = os.path.join(temp_dir, f"decoded_{len(os.listdir(temp_dir))}.wav")
    with wave.open(output, "wb") as handle:
        handle.setnchannels(samples.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
    return output


def annotations(scene: bpy.types.Scene, clip: timing.ClipRange, channel: int,
                default_kind: str) -> tuple[TextAnnotation, ...]:
    """Unmuted text strips of ``channel`` that overlap ``clip``, as annotations timed from the clip start."""
    if channel <= 0:
        return ()
    fps = scene_fps(scene)
    out = []
    for strip in _all_strips(scene):
        if strip.type != "TEXT" or strip.channel != channel or _muted(scene, strip):
            continue
        span = timing.annotation_span(strip.frame_final_start, strip.frame_final_end, clip, fps)
        parsed = timing.parse_annotation(strip.text, default_kind)
        if span is None or parsed is None:
            continue
        out.append(TextAnnotation(start_s=span[0], end_s=span[1], text=parsed[1], kind=parsed[0]))
    return tuple(sorted(out, key=lambda a: (a.start_s, a.end_s)))


def unused_text_channels(scene: bpy.types.Scene, clip: timing.ClipRange, channel: int) -> list[int]:
    """Channels other than ``channel`` with unmuted, non-empty text strips overlapping ``clip`` (sorted)."""
    found = set()
    for strip in _all_strips(scene):
        if strip.type != "TEXT" or strip.channel == channel or _muted(scene, strip) or not strip.text.strip():
            continue
        if timing.annotation_span(strip.frame_final_start, strip.frame_final_end, clip, scene_fps(scene)):
            found.add(strip.channel)
    return sorted(found)


def _mode_for(settings: Settings, text: tuple[TextAnnotation, ...]) -> str:
    if settings.mode != "AUTO":
        return settings.mode.lower()
    kinds = {a.kind for a in text}
    if "motion" in kinds:
        return "audio_text"
    if "phrase" in kinds:
        return "audio_phrase"
    return "audio_only"


@dataclass(frozen=True)
class CharacterPlan:
    """What the run needs to write a character's take when the backend is done."""

    object_name: str
    strip_name: str
    frame_start: int
    frames: int
    fps: float
    to_file_end: bool = False
    notes: tuple[str, ...] = ()
    settings: Settings | None = None


def plan_generation(context: bpy.types.Context, obj: bpy.types.Object, *, models: str, device: str,
                    work_dir: str, settings: Settings | None = None) -> tuple[PlannedGeneration, CharacterPlan]:
    """Gather one character's request from the scene (read-only).

    Args:
        context: Blender context (the active scene is the character's; the sequencer scene may differ).
        obj: the armature.
        models: the weights folder ('' = none).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``mps``.
        work_dir: folder for the result file and unpacked sounds.
        settings: the settings to use (a take's, for Generate Again); default: ``obj.expgest``'s, as they are.

    Returns:
        The job for the backend and the bookkeeping to apply its result.

    Raises:
        SceneError: with the fix, when the scene does not allow it.
    """
    settings = settings or Settings.from_object(obj)
    seq_scene = sequencer_scene(context)
    strip = choose_sound_strip(seq_scene, settings, obj.name)
    if strip.clip.frames <= 0:
        raise SceneError(f"'{obj.name}': its sound strip '{strip.name}' plays no sound (its Sound Offset or trims "
                         "leave nothing of the file); change them or pick another strip.")
    audio_path, temp_files = resolve_audio_file(seq_scene, strip.name, work_dir)
    text = annotations(seq_scene, strip.clip, settings.text_channel, settings.annotation_kind)
    fps = scene_fps(context.scene)
    seq_fps = scene_fps(seq_scene)
    frame_start = strip.clip.frame_start
    if seq_scene != context.scene:  # the sequencer scene's timeline in the character scene's frames
        frame_start = int(round((strip.clip.frame_start - seq_scene.frame_start) / seq_fps * fps
                                + context.scene.frame_start))
    duration = strip.clip.frames / seq_fps
    output = os.path.join(work_dir, f"take_{len(os.listdir(work_dir))}_{abs(hash(obj.name)) % 10**8}.npz")
    request = GenerationRequest(
        audio=AudioSource(path=audio_path, start_s=strip.clip.source_start_s,
                          end_s=None if strip.to_file_end else strip.clip.source_start_s + duration),
        output=output, fps=fps, engine=settings.engine, mode=_mode_for(settings, text),
        models=models or None, text=text,
        emotion=(EmotionSpan(label=settings.emotion, strength=settings.emotion_strength),),
        speaker=settings.speaker, seed=settings.seed, steps=QUALITY_STEPS[settings.quality],
        device=device)  # the request validates itself: an invalid one raises RequestError here, before starting
    job = PlannedGeneration(key=obj.name, label=f"{obj.name} \u00b7 {strip.name}", request=request.to_dict(),
                            temp_files=temp_files + (output,))
    notes = ignored_inputs(seq_scene, obj.name, strip, settings, text, request.mode)
    # The backend writes request.frame_count() frames; reading to the file's end, the strip's length estimates it.
    bookkeeping = CharacterPlan(object_name=obj.name, strip_name=strip.name, frame_start=frame_start,
                                frames=request.frame_count(duration), fps=fps, to_file_end=strip.to_file_end,
                                notes=notes, settings=settings)
    return job, bookkeeping


def ignored_inputs(seq_scene: bpy.types.Scene, character: str, strip: SoundStripInfo, settings: Settings,
                   used: tuple[TextAnnotation, ...], mode: str) -> tuple[str, ...]:
    """Sentences naming every input near the line that the generation does not use, and how to use it.

    Muted sound strips over the line's frames, text strips on other channels (no Text Channel set), muted text
    strips on the Text Channel, text kinds the engine does not read (the procedural engine reads only
    ``motion`` annotations; the ExpGest engine in Audio Only guidance reads none).
    """
    out = []
    muted_sounds = [s.name for s in sound_strips(seq_scene) if s.muted and s.name != strip.name
                    and s.clip.frame_start < strip.clip.frame_end and strip.clip.frame_start < s.clip.frame_end]
    if muted_sounds:
        names = ", ".join(f"'{name}'" for name in muted_sounds[:3]) + (" ..." if len(muted_sounds) > 3 else "")
        out.append(f"'{character}': muted sound strips over the same frames were not used ({names}).")
    if settings.text_channel <= 0:
        unused = unused_text_channels(seq_scene, strip.clip, settings.text_channel)
        if unused:
            out.append(f"'{character}': text strips on channel {', '.join(map(str, unused))} overlap "
                       f"'{strip.name}' but were not used: set the character's Text Channel to use them.")
        return tuple(out)
    fps = scene_fps(seq_scene)
    muted = [s for s in _all_strips(seq_scene) if s.type == "TEXT" and s.channel == settings.text_channel
             and _muted(seq_scene, s) and s.text.strip()
             and timing.annotation_span(s.frame_final_start, s.frame_final_end, strip.clip, fps)]
    if muted:
        names = ", ".join(f"'{s.name}'" for s in muted[:3]) + (" ..." if len(muted) > 3 else "")
        out.append(f"'{character}': muted text strips on channel {settings.text_channel} were not used ({names}); "
                   "unmute them to use them.")
    if settings.engine == "procedural":
        skipped = [a for a in used if a.kind != "motion"]
        if skipped:
            kinds = " and ".join(sorted({a.kind for a in skipped}))
            out.append(f"'{character}': the Procedural engine reads only motion text; {len(skipped)} {kinds} "
                       f"text strip{'s' if len(skipped) != 1 else ''} on channel {settings.text_channel} "
                       "were not used (the ExpGest engine uses them).")
    elif mode == "audio_only" and used:
        out.append(f"'{character}': Guidance is Audio Only, so the {len(used)} text strip"
                   f"{'s' if len(used) != 1 else ''} on channel {settings.text_channel} were not used; set "
                   "Guidance to Automatic to use them.")
    return tuple(out)


TEMP_FOLDER_FIX = ("free some disk space there, or start Blender with TMPDIR (TEMP on Windows) set to a writable "
                   "folder, then try again.")


def new_work_dir(prefix: str = "expgest_run_") -> str:
    """A fresh temporary folder for one run's files.

    Raises:
        SceneError: when the temporary folder cannot be written (missing, read-only, a file, full disk).
    """
    try:
        return tempfile.mkdtemp(prefix=prefix)
    except OSError as error:
        raise SceneError(f"The temporary folder '{tempfile.gettempdir()}' cannot be written "
                         f"({error.strerror or error}); {TEMP_FOLDER_FIX}") from None
