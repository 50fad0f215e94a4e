"""Scene-building helpers for the real-Blender tests (imported by the test modules)."""

from __future__ import annotations

from pathlib import Path

import bpy

MODULE = "bl_ext.user_default.expgest"


def add_character(name: str = "SMPLX") -> bpy.types.Object:
    """An SMPL-X armature through the add-on's operator (no mesh, to stay fast)."""
    assert bpy.ops.expgest.add_character(name=name, with_mesh=False) == {"FINISHED"}
    return bpy.data.objects[name]


def add_sound(scene, path: Path, *, name: str = "speech", channel: int = 1, frame_start: int = 1):
    """A sound strip (works on 4.2 - 5.0)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    return strips.new_sound(name, str(path), channel=channel, frame_start=frame_start)


def add_text(scene, text: str, *, channel: int, frame_start: int, length: int):
    """A text strip (``length`` on 5.0, ``frame_end`` before)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    try:
        strip = strips.new_effect(f"text_{frame_start}", type="TEXT", channel=channel, frame_start=frame_start,
                                  length=length)
    except TypeError:
        strip = strips.new_effect(f"text_{frame_start}", type="TEXT", channel=channel, frame_start=frame_start,
                                  frame_end=frame_start + length)
    strip.text = text
    return strip


def scene_state(scene) -> dict:
    """What a generation may change: actions, NLA tracks and rotation modes (to prove 'unchanged')."""
    state = {"actions": sorted(a.name for a in bpy.data.actions)}
    for obj in scene.objects:
        if obj.type == "ARMATURE":
            adt = obj.animation_data
            state[obj.name] = ([t.name for t in adt.nla_tracks] if adt else None,
                               [pb.rotation_mode for pb in obj.pose.bones])
    return state
