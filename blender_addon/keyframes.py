"""The one bpy writer of animation: a take's keyframes into a new Action on a new NLA track.

Reads an armature's rest pose for ``retarget.py`` and writes ``retarget.BoneTracks`` in bulk
(``keyframe_points.add`` + ``foreach_set``, HOUSE_STYLE 19), through the slotted-action channelbag on
Blender >= 4.4 and ``action.fcurves`` before. Nothing that exists is modified except that driven pose bones
are switched to quaternion rotation; if writing fails, what was created is removed again.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import retarget, timing

SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)


@dataclass(frozen=True)
class WrittenTake:
    """What a take created (names, for reports and tests)."""

    action: str
    track: str
    strip: str
    frame_start: int
    frames: int
    warnings: tuple[str, ...]


def read_armature_rest(obj: bpy.types.Object) -> retarget.ArmatureRest:
    """An armature object's rest pose and SMPL-X bone map, for the pure retarget passes.

    Raises:
        retarget.RetargetError: when it is not an SMPL-X armature (from ``rig.find_smplx_bones``).
    """
    # rigs hook (issue 10): any humanoid rig, identified by rig.read_armature_rest (name tables, structure, or the
    # map stored on the armature).
    from .rig import read_armature_rest as _read_any_rig

    return _read_any_rig(obj)


def _fcurves_and_groups(obj: bpy.types.Object, action: bpy.types.Action):
    """The F-curve and group collections to write into, and the slot (None before 4.4)."""
    if not SLOTTED_ACTIONS:
        return action.fcurves, action.groups, None
    slot = action.slots.new(id_type="OBJECT", name=obj.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    channelbag = strip.channelbag(slot, ensure=True)
    return channelbag.fcurves, channelbag.groups, slot


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _write_curve(fcurves, groups, data_path: str, index: int, group: str, frames: np.ndarray,
                 values: np.ndarray) -> None:
    curve = fcurves.new(data_path, index=index)
    curve.group = groups.get(group) or groups.new(group)
    points = curve.keyframe_points
    points.add(len(frames))
    coords = np.empty((len(frames), 2), dtype=np.float32)
    coords[:, 0] = frames
    coords[:, 1] = values
    points.foreach_set("co", coords.ravel())
    points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    curve.update()


def write_action(obj: bpy.types.Object, tracks: retarget.BoneTracks, name: str, frame_start: int):
    """A new Action keyed from ``frame_start`` (one key per frame, linear), and its slot on >= 4.4.

    Args:
        obj: the armature (only its name and pose bones' paths are used).
        tracks: (T, B, 4) rotations and (T, 3) root location.
        name: the Action's name.
        frame_start: scene frame of the first key.

    Returns:
        (action, slot or None).
    """
    action = bpy.data.actions.new(name)
    try:
        if not SLOTTED_ACTIONS:  # slots carry the ID type from 4.4 on
            action.id_root = "OBJECT"
        fcurves, groups, slot = _fcurves_and_groups(obj, action)
        frames = frame_start + np.arange(tracks.quaternions.shape[0], dtype=np.float64)
        for k, bone in enumerate(tracks.bone_names):
            path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion'
            for component in range(4):
                _write_curve(fcurves, groups, path, component, bone, frames, tracks.quaternions[:, k, component])
        root_path = f'pose.bones["{bpy.utils.escape_identifier(tracks.root_bone)}"].location'
        for axis in range(3):
            _write_curve(fcurves, groups, root_path, axis, tracks.root_bone, frames, tracks.root_location[:, axis])
        for bone, prop, value in getattr(tracks, "switches", ()):  # rigs hook (issue 10): e.g. Rigify IK/FK to FK
            path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"]["{bpy.utils.escape_identifier(prop)}"]'
            _write_curve(fcurves, groups, path, 0, bone, frames, np.full(len(frames), value))
        # The take spans exactly as many frames as the audio: keys frame_start .. frame_start + T - 1, held
        # through the last frame, so the NLA strip ends where the sound strip ends.
        action.use_frame_range = True
        action.frame_start = frame_start
        action.frame_end = frame_start + len(frames)
    except Exception:
        bpy.data.actions.remove(action)
        raise
    return action, slot


def _extrapolation(existing_starts: list[float], frame_start: int) -> str:
    """How a new take (on the top NLA track) extends past its frames without hiding what is below it.

    A take held before its start would cover every earlier take or NLA strip of the character (a second
    line's take hid the first line's), and one held after its end would cover later ones. So: hold both ways
    when it is the character's only NLA animation, hold forward (into the pause after the line) when
    nothing below starts later, else play only its own frames.
    """
    if not existing_starts:
        return "HOLD"
    return "NOTHING" if max(existing_starts) > frame_start else "HOLD_FORWARD"


def apply_take(obj: bpy.types.Object, tracks: retarget.BoneTracks, *, strip_name: str,
               frame_start: int) -> WrittenTake:
    """Write a take: new Action, new NLA track on top, strip at ``frame_start`` named after the take.

    Args:
        obj: the armature object.
        tracks: keyframe values from ``retarget.retarget_motion``.
        strip_name: the sound strip's name (for the take name).
        frame_start: scene frame where the sound strip starts.

    Returns:
        Names of what was created, and warnings for the user.
    """
    existing = [a.name for a in bpy.data.actions]
    if obj.animation_data is not None:
        existing += [s.name for t in obj.animation_data.nla_tracks for s in t.strips]
    name = timing.take_name(obj.name, strip_name, timing.next_take_number(existing, obj.name, strip_name))
    warnings = []
    changed_modes = []
    for bone in tracks.bone_names:
        pose_bone = obj.pose.bones[bone]
        if pose_bone.rotation_mode != "QUATERNION":
            changed_modes.append((pose_bone, pose_bone.rotation_mode))
    frames = tracks.quaternions.shape[0]
    action, slot = write_action(obj, tracks, name, frame_start)
    created_animation_data = obj.animation_data is None
    track = None
    try:
        animation_data = obj.animation_data or obj.animation_data_create()
        if animation_data.action is not None:
            warnings.append(f"'{obj.name}' has an active action '{animation_data.action.name}' that plays on top of "
                            "the NLA takes; push it down or unlink it to see the new take.")
        starts = [s.frame_start for t in animation_data.nla_tracks for s in t.strips]
        track = animation_data.nla_tracks.new()
        track.name = name
        strip = track.strips.new(name, int(frame_start), action)
        strip.extrapolation = _extrapolation(starts, frame_start)
        if slot is not None and strip.action_slot != slot:
            strip.action_slot = slot
        strip.action_frame_start = frame_start
        strip.action_frame_end = frame_start + frames
        strip.frame_end = frame_start + frames
        for pose_bone, _mode in changed_modes:
            pose_bone.rotation_mode = "QUATERNION"
    except Exception:
        if track is not None:
            obj.animation_data.nla_tracks.remove(track)
        if created_animation_data and obj.animation_data is not None:
            obj.animation_data_clear()
        for pose_bone, mode in changed_modes:
            pose_bone.rotation_mode = mode
        bpy.data.actions.remove(action)
        raise
    if changed_modes:
        warnings.append(f"{len(changed_modes)} bones of '{obj.name}' were switched to quaternion rotation.")
    return WrittenTake(action=action.name, track=track.name, strip=strip.name, frame_start=int(frame_start),
                       frames=frames, warnings=tuple(warnings))
