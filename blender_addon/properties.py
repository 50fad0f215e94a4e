"""Settings stored in the .blend: per character on ``Object.expgest``, scene-wide on ``Scene.expgest``.

Runtime state (the run in progress, its progress) is not stored here: it lives in ``operators.py`` so
progress updates never touch the undo history.
"""

from __future__ import annotations

import bpy

from .backend.request import EMOTIONS

EMOTION_ITEMS = [(name, name.capitalize(), f"Gestures with {name}") for name in EMOTIONS]
ENGINE_ITEMS = [
    ("procedural", "Procedural", "Built-in speech-driven gestures; needs no weights"),
    ("expgest", "ExpGest", "The ExpGest diffusion model; needs the released weights (Preferences > Models Folder)"),
]
MODE_ITEMS = [
    ("AUTO", "Automatic", "Audio only, or audio + text / phrase when the annotation channel has strips"),
    ("audio_only", "Audio Only", "Audio and emotion"),
    ("audio_phrase", "Audio + Phrases", "Audio with action phrases such as 'Kick'"),
    ("audio_text", "Audio + Text", "Audio with motion descriptions such as 'a person walks back and forth'"),
]
KIND_ITEMS = [
    ("motion", "Motion", "Text strips describe motions ('a person waves')"),
    ("phrase", "Phrase", "Text strips are action phrases ('Kick, Forwards Walking')"),
    ("transcript", "Transcript", "Text strips are what is said"),
]
QUALITY_ITEMS = [
    ("DRAFT", "Draft", "Fewest sampler steps (ExpGest engine): fast preview"),
    ("STANDARD", "Standard", "A balance of speed and quality"),
    ("HIGH", "High", "All sampler steps, as the paper"),
]


class EXPGEST_PG_character(bpy.types.PropertyGroup):
    """Gesture settings of one character (an armature object)."""

    sound_strip: bpy.props.StringProperty(
        name="Sound Strip", default="",
        description="The character's dialogue strip in the Video Sequencer (empty: the only unmuted sound strip)")
    text_channel: bpy.props.IntProperty(
        name="Text Channel", default=0, min=0, max=128,
        description="Sequencer channel whose text strips annotate this character's dialogue (0: none)")
    annotation_kind: bpy.props.EnumProperty(
        name="Text Kind", items=KIND_ITEMS, default="motion",
        description="What text strips without a 'motion:' / 'phrase:' / 'transcript:' prefix are")
    emotion: bpy.props.EnumProperty(name="Emotion", items=EMOTION_ITEMS, default="neutral")
    emotion_strength: bpy.props.FloatProperty(name="Strength", default=1.0, min=0.0, max=2.0)
    engine: bpy.props.EnumProperty(name="Engine", items=ENGINE_ITEMS, default="procedural")
    mode: bpy.props.EnumProperty(name="Model", items=MODE_ITEMS, default="AUTO")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="STANDARD")
    speaker: bpy.props.IntProperty(name="Speaker Style", default=0, min=0, max=3,
                                   description="ExpGest speaker style (one of the 4 BEAT speakers)")


def _is_armature(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class EXPGEST_PG_scene(bpy.types.PropertyGroup):
    """Scene-wide gesture settings and the last result shown in the panel."""

    character: bpy.props.PointerProperty(
        name="Character", type=bpy.types.Object, poll=_is_armature,
        description="The armature to animate (empty: the active armature, or the scene's only one)")
    last_report: bpy.props.StringProperty(name="Last Result", default="")
    last_report_is_error: bpy.props.BoolProperty(default=False)


CLASSES = (EXPGEST_PG_character, EXPGEST_PG_scene)


def attach() -> None:
    """Add ``Object.expgest`` and ``Scene.expgest``."""
    bpy.types.Object.expgest = bpy.props.PointerProperty(type=EXPGEST_PG_character)
    bpy.types.Scene.expgest = bpy.props.PointerProperty(type=EXPGEST_PG_scene)


def detach() -> None:
    """Remove what ``attach`` added."""
    del bpy.types.Scene.expgest
    del bpy.types.Object.expgest
