"""Settings stored in the .blend: per character on ``Object.expgest``, scene-wide on ``Scene.expgest``.

Runtime state (the run in progress, its progress) is not stored here: it lives in ``runs.py`` so
progress updates never touch the undo history.
"""

from __future__ import annotations

import math

import bpy

from .backend.vocabulary import EMOTIONS, ENGINES, MODES, QUALITY_STEPS, TEXT_KINDS

EMOTION_DESCRIPTIONS = {
    "neutral": "Calm, even gestures",
    "happiness": "Lively, open gestures with more energy",
    "sadness": "Slower, smaller, lower gestures",
    "anger": "Sharp, forceful gestures",
    "surprise": "Sudden, wide gestures",
    "fear": "Tense, closed, small gestures",
    "disgust": "Turning-away, rejecting gestures",
    "contempt": "Few, dismissive gestures",
}
EMOTION_ITEMS = [(name, name.capitalize(), EMOTION_DESCRIPTIONS.get(name, f"Gestures that show {name}"))
                 for name in EMOTIONS]
# Labels and tooltips of the vocabulary's names (backend/vocabulary.py holds the names themselves).
ENGINE_LABELS = {
    "procedural": ("Procedural", "Built-in speech-driven gestures; needs no weights"),
    "expgest": ("ExpGest", "The ExpGest diffusion model; needs the released weights (Preferences > Models Folder)"),
}
ENGINE_ITEMS = [(name, *ENGINE_LABELS[name]) for name in ENGINES]
MODE_LABELS = {
    "audio_only": ("Audio Only", "Audio and emotion; text strips are not used"),
    "audio_phrase": ("Audio + Phrases", "Audio with action phrases such as 'Kick'"),
    "audio_text": ("Audio + Text", "Audio with motion descriptions such as 'a person walks back and forth'"),
}
MODE_ITEMS = [("AUTO", "Automatic", "Audio only, or audio + text / phrase when the text channel has strips")] + [
    (name, *MODE_LABELS[name]) for name in MODES]
KIND_LABELS = {
    "motion": ("Motion", "Text strips describe motions ('a person waves')"),
    "phrase": ("Phrase", "Text strips are action phrases ('Kick, Forwards Walking')"),
    "transcript": ("Transcript", "Text strips are what is said"),
}
KIND_ITEMS = [(name, *KIND_LABELS[name]) for name in sorted(TEXT_KINDS, key=list(KIND_LABELS).index)]
QUALITY_LABELS = {
    "draft": ("Draft", "sampler steps (ExpGest engine): fast preview"),
    "standard": ("Standard", "sampler steps: a balance of speed and quality"),
    "high": ("High", "sampler steps, as in the paper: slowest"),
}
# Identifiers stay upper case (saved in .blend files and takes); the steps are the vocabulary's.
QUALITY_ITEMS = [(name.upper(), QUALITY_LABELS[name][0], f"{steps} {QUALITY_LABELS[name][1]}")
                 for name, steps in QUALITY_STEPS.items()]
SCOPE_ITEMS = [
    ("FULL", "Full Body", "Key every bone and the root motion (jaw and eyes included)"),
    ("UPPER", "Upper Body", "Key the spine and up (no pelvis, legs, jaw or eyes): legs and root motion below "
                            "this take keep playing"),
    ("ARMS", "Arms and Hands", "Key collars, arms, wrists and fingers only"),
    ("HANDS", "Hands", "Key wrists and fingers only"),
    ("HEAD", "Head", "Key neck and head only"),
]
BLEND_ITEMS = [
    ("REPLACE", "Replace", "The take replaces the animation below it on the bones it keys (by its influence)"),
    ("COMBINE", "Combine", "The take's rotations are multiplied onto the animation below, locations added: "
                           "a gesture layer over a base motion"),
    ("ADD", "Add", "The take's channel values are added to the animation below"),
]
SEED_MAX = 2**31 - 1


class EXPGEST_PG_character(bpy.types.PropertyGroup):
    """Gesture settings of one character (an armature object)."""

    sound_strip: bpy.props.StringProperty(
        name="Sound Strip", default="",
        description="The character's dialogue: a sound strip of the Video Sequencer (empty: the scene's only "
                    "unmuted sound strip)",
        search=lambda self, context, text: _sound_strip_names(context, text))
    text_channel: bpy.props.IntProperty(
        name="Text Channel", default=0, min=0, max=128,
        description="Sequencer channel (1-128) whose text strips annotate this character's dialogue; 0 uses "
                    "no text")
    annotation_kind: bpy.props.EnumProperty(
        name="Text Kind", items=KIND_ITEMS, default="motion",
        description="What text strips without a 'motion:' / 'phrase:' / 'transcript:' prefix are")
    emotion: bpy.props.EnumProperty(name="Emotion", items=EMOTION_ITEMS, default="neutral",
                                    description="The emotion the gestures express")
    emotion_strength: bpy.props.FloatProperty(
        name="Strength", default=1.0, min=0.0, max=2.0, subtype="FACTOR",
        description="How strongly the emotion shows: 0 neutral, 1 as trained, up to 2 exaggerated")
    engine: bpy.props.EnumProperty(name="Engine", items=ENGINE_ITEMS, default="procedural",
                                   description="What makes the motion")
    mode: bpy.props.EnumProperty(name="Guidance", items=MODE_ITEMS, default="AUTO",
                                 description="What guides the ExpGest model besides the audio")
    seed: bpy.props.IntProperty(
        name="Seed", default=0, min=0, max=SEED_MAX,
        description="Random seed of the take (0 to 2147483647); the same seed and settings make the same "
                    "motion. Unlocked, every Generate picks a new one and shows it here")
    lock_seed: bpy.props.BoolProperty(
        name="Lock Seed", default=False,
        description="Keep this seed for every take (off: a new seed for every take, so each take differs)")
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="STANDARD",
                                    description="Sampler steps of the ExpGest engine: more is slower and smoother")
    speaker: bpy.props.IntProperty(
        name="Speaker", default=0, min=0, max=3,
        description="ExpGest speaker 0-3: the gesture habits of one of the four speakers it was trained on")
    scope: bpy.props.EnumProperty(name="Keys", items=SCOPE_ITEMS, default="FULL",
                                  description="Which bones the take keys; bones it does not key keep the "
                                              "animation below it")
    blend: bpy.props.EnumProperty(name="Blend", items=BLEND_ITEMS, default="REPLACE",
                                  description="How the take's NLA strip mixes with the animation below it")
    influence: bpy.props.FloatProperty(
        name="Influence", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
        description="How much of the take plays over the animation below it (0 to 1); below 1 the strip's "
                    "influence is keyed, so it can be faded by hand")
    rotation: bpy.props.EnumProperty(
        name="Rotation", default="KEEP",
        items=[("KEEP", "Keep Modes", "Key each bone in the rotation mode it has (Euler bones get Euler curves), so "
                                      "the animation below keeps playing"),
               ("QUATERNION", "Quaternion", "Key every bone in quaternions: bones in another mode are switched and "
                                            "their existing rotation curves converted, so they keep playing")],
        description="The rotation mode the take keys bones in")
    reduce_keys: bpy.props.BoolProperty(
        name="Reduce Keys", default=True,
        description="Keep only the keys needed to stay within the tolerances, with smooth Bezier handles, so "
                    "the curves can be edited by hand (off: one linear key per frame)")
    tolerance_rotation: bpy.props.FloatProperty(
        name="Rotation", default=math.radians(0.5), min=math.radians(0.01), max=math.radians(10.0), precision=2,
        subtype="ANGLE", step=10,
        description="Largest rotation difference (0.01-10 degrees) any bone may have from the generated motion "
                    "after key reduction")
    tolerance_location: bpy.props.FloatProperty(
        name="Location", default=0.001, min=0.00001, max=0.1, precision=1, subtype="DISTANCE", unit="LENGTH",
        step=0.01,
        description="Largest root position difference (0.01-100 mm) after key reduction")
    active_take: bpy.props.IntProperty(name="Take", default=0, min=0,
                                       description="The take selected in the take list")
    previous_take: bpy.props.StringProperty(name="Previous Take", default="",
                                            description="The take that played before the active one (for A/B)")


def _sound_strip_names(context: bpy.types.Context, text: str) -> list[str]:
    """The sound strips of the sequencer scene (the picker lists nothing else)."""
    from . import scene

    return [info.name for info in scene.sound_strips(scene.sequencer_scene(context))
            if text.lower() in info.name.lower()]


def _is_armature(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class EXPGEST_PG_scene(bpy.types.PropertyGroup):
    """Scene-wide gesture settings. The last result is not here: it lives in memory (``runs.REPORT``)
    so it is never saved in the .blend."""

    character: bpy.props.PointerProperty(
        name="Character", type=bpy.types.Object, poll=_is_armature,
        description="The armature to animate when no armature (or body mesh) is selected")
    show_layering: bpy.props.BoolProperty(
        name="Show Layering", default=False,
        description="Show what a new take keys (body parts) and how it blends with the animation below it")
    show_curves: bpy.props.BoolProperty(
        name="Show Curves", default=False,
        description="Show the key reduction tolerances of new takes")

    @property
    def last_report(self) -> str:
        """The last run's report (read-only, in memory; kept here for scripts)."""
        from . import operators

        return operators.REPORT.text

    @property
    def last_report_is_error(self) -> bool:
        """Whether the last report is an error (read-only, in memory)."""
        from . import operators

        return operators.REPORT.is_error


CLASSES = (EXPGEST_PG_character, EXPGEST_PG_scene)


def attach() -> None:
    """Add ``Object.expgest`` and ``Scene.expgest``."""
    bpy.types.Object.expgest = bpy.props.PointerProperty(type=EXPGEST_PG_character)
    bpy.types.Scene.expgest = bpy.props.PointerProperty(type=EXPGEST_PG_scene)


def detach() -> None:
    """Remove what ``attach`` added."""
    del bpy.types.Scene.expgest
    del bpy.types.Object.expgest
