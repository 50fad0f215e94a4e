"""The one bpy writer of animation: a take's keyframes into a new Action on a new NLA track.

Reads an armature's rest pose for ``retarget.py`` and writes ``retarget.BoneTracks`` in bulk
(``keyframe_points.add`` + ``foreach_set``, HOUSE_STYLE 19), through the slotted-action channelbag on
Blender >= 4.4 and ``action.fcurves`` before. Which bones get keys, in which rotation mode and how sparse the
keys are comes from the pure passes of ``channels.py``. Nothing that exists is modified (each bone keeps its
rotation mode); if writing fails, what was created is removed again.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import channels, retarget, timing
from .backend.motion.skeleton import JOINT_NAMES

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
    reduction: ReductionStats | None = None


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


_KEYFRAME = bpy.types.Keyframe.bl_rna.properties
_LINEAR = _KEYFRAME["interpolation"].enum_items["LINEAR"].value
_BEZIER = _KEYFRAME["interpolation"].enum_items["BEZIER"].value
_ALIGNED = _KEYFRAME["handle_left_type"].enum_items["ALIGNED"].value


@dataclass(frozen=True)
class TakeOptions:
    """How a take is written (the panel's Layering and Curves settings).

    Attributes:
        scope: a key of ``channels.SCOPES`` (which bones get keys).
        blend: the NLA strip's blend type, ``REPLACE`` | ``COMBINE`` | ``ADD``.
        influence: the strip's influence in [0, 1] (1: full, not animated).
        reduce: None for one linear key per frame, else the tolerance of the sparse Bezier keys.
        to_quaternion: key every bone in quaternions, switching bones that use another rotation mode and
            converting their existing curves (``convert_to_quaternion``); False keeps each bone's mode.
    """

    scope: str = "FULL"
    blend: str = "REPLACE"
    influence: float = 1.0
    reduce: channels.Tolerance | None = None
    to_quaternion: bool = False


@dataclass(frozen=True)
class Channel:
    """One F-curve to write: ``pose.bones[bone].<prop>[index]`` with one value per frame.

    ``mode`` is the bone's rotation mode for rotation channels, ``""`` for location.
    """

    bone: str
    prop: str
    index: int
    values: np.ndarray
    mode: str = ""

    @property
    def data_path(self) -> str:
        return f'pose.bones["{bpy.utils.escape_identifier(self.bone)}"].{self.prop}'


@dataclass(frozen=True)
class ReductionStats:
    """What key reduction did to a take: key counts and the largest difference it left at any frame."""

    dense_keys: int
    keys: int
    max_rotation_deg: float
    max_location_m: float


def take_channels(obj: bpy.types.Object, tracks: retarget.BoneTracks, rest: retarget.ArmatureRest,
                  scope: str, to_quaternion: bool = False) -> list[Channel]:
    """The channels a take keys: bones in ``scope`` in their own rotation mode (or all in quaternions), the root
    location for FULL."""
    joint_of = dict(zip(rest.names, rest.joint_of_bone, strict=True))
    joint_names = tuple(JOINT_NAMES[joint_of[bone]] for bone in tracks.bone_names)
    out = []
    for k in channels.bones_in_scope(tracks.bone_names, joint_names, scope):
        bone = tracks.bone_names[k]
        mode = "QUATERNION" if to_quaternion else obj.pose.bones[bone].rotation_mode
        prop, values = channels.rotation_channels(tracks.quaternions[:, k], mode)
        out += [Channel(bone, prop, c, values[:, c], mode) for c in range(values.shape[1])]
    if scope == "FULL":
        out += [Channel(tracks.root_bone, "location", axis, tracks.root_location[:, axis]) for axis in range(3)]
    return out


def _new_curve(fcurves, groups, channel: Channel):
    curve = fcurves.new(channel.data_path, index=channel.index)
    curve.group = groups.get(channel.bone) or groups.new(channel.bone)
    return curve


def _write_dense(curve, frames: np.ndarray, values: np.ndarray) -> None:
    points = curve.keyframe_points
    points.add(len(frames))
    coords = np.empty((len(frames), 2), dtype=np.float32)
    coords[:, 0] = frames
    coords[:, 1] = values
    points.foreach_set("co", coords.ravel())
    points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    _deselect(points, len(frames))
    curve.update()


def _deselect(points, count: int) -> None:
    unselected = np.zeros(count, dtype=bool)
    for flag in ("select_control_point", "select_left_handle", "select_right_handle"):
        points.foreach_set(flag, unselected)


def _write_sparse(curve, frames: np.ndarray, keys: np.ndarray, values: np.ndarray, slopes: np.ndarray) -> None:
    """Keys at ``frames[keys]`` with aligned Bezier handles at thirds (``channels.bezier_handles``)."""
    points = curve.keyframe_points
    count = len(keys)
    points.add(count)
    key_frames = frames[keys]
    left, right = channels.bezier_handles(key_frames, values, slopes)
    coords = np.stack([key_frames, values], -1)
    points.foreach_set("co", coords.astype(np.float32).ravel())
    points.foreach_set("handle_left", left.astype(np.float32).ravel())
    points.foreach_set("handle_right", right.astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(count, _BEZIER, dtype=np.int32))
    points.foreach_set("handle_left_type", np.full(count, _ALIGNED, dtype=np.int32))
    points.foreach_set("handle_right_type", np.full(count, _ALIGNED, dtype=np.int32))
    _deselect(points, count)
    curve.update()


def _reduce(take: list[Channel], tolerance: channels.Tolerance, frames: int):
    """Reduce every channel; returns per-channel (keys, values, slopes) and the stats (measured here)."""
    dense_values = np.stack([channel.values for channel in take], -1)
    tolerances = np.array([tolerance.per_channel(channel.prop) for channel in take])
    reduced = []
    approx: dict[tuple[str, str, str], np.ndarray] = {}
    dense: dict[tuple[str, str, str], np.ndarray] = {}
    for channel, (keys, slopes) in zip(take, channels.reduce_channels(dense_values, tolerances), strict=True):
        values = channel.values[keys]
        reduced.append((keys, values, slopes))
        size = {"rotation_euler": 3, "location": 3}.get(channel.prop, 4)
        key = (channel.bone, channel.prop, channel.mode)
        approx.setdefault(key, np.zeros((frames, size)))[:, channel.index] = channels.evaluate_keys(
            frames, keys, values, slopes)
        dense.setdefault(key, np.zeros((frames, size)))[:, channel.index] = channel.values
    rotation, location = 0.0, 0.0
    for key, curve in approx.items():
        if key[1] == "location":
            location = max(location, float(np.linalg.norm(curve - dense[key], axis=-1).max()))
        else:
            difference = channels.rotation_difference(key[2], curve, dense[key])
            rotation = max(rotation, float(np.degrees(difference).max()))
    stats = ReductionStats(dense_keys=frames * len(take), keys=sum(len(r[0]) for r in reduced),
                           max_rotation_deg=rotation, max_location_m=location)
    return reduced, stats


def write_action(obj: bpy.types.Object, tracks: retarget.BoneTracks, name: str, frame_start: int,
                 options: TakeOptions | None = None, rest: retarget.ArmatureRest | None = None):
    """A new Action keyed from ``frame_start``, and its slot on >= 4.4.

    Args:
        obj: the armature (its pose bones' paths and rotation modes are used).
        tracks: (T, B, 4) rotations and (T, 3) root location.
        name: the Action's name.
        frame_start: scene frame of the first key.
        options: scope and key reduction (default: every bone, one linear key per frame).
        rest: ``read_armature_rest(obj)`` if already read.

    Returns:
        (action, slot or None, ReductionStats or None).
    """
    options = options or TakeOptions()
    rest = rest or read_armature_rest(obj)
    count = tracks.quaternions.shape[0]
    take = take_channels(obj, tracks, rest, options.scope, options.to_quaternion)
    frames = frame_start + np.arange(count, dtype=np.float64)
    reduced, stats = _reduce(take, options.reduce, count) if options.reduce is not None else (None, None)
    action = bpy.data.actions.new(name)
    try:
        if not SLOTTED_ACTIONS:  # slots carry the ID type from 4.4 on
            action.id_root = "OBJECT"
        fcurves, groups, slot = _fcurves_and_groups(obj, action)
        for n, channel in enumerate(take):
            curve = _new_curve(fcurves, groups, channel)
            if reduced is None:
                _write_dense(curve, frames, channel.values)
            else:
                _write_sparse(curve, frames, *reduced[n])
        for bone, prop, value in getattr(tracks, "switches", ()):  # rigs hook (issue 10): e.g. Rigify IK/FK to FK
            path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"]["{bpy.utils.escape_identifier(prop)}"]'
            curve = fcurves.new(path, index=0)
            curve.group = groups.get(bone) or groups.new(bone)
            _write_dense(curve, frames[:1], np.array([value], dtype=np.float64))
        # The take spans exactly as many frames as the audio: keys frame_start .. frame_start + T - 1, held
        # through the last frame, so the NLA strip ends where the sound strip ends.
        action.use_frame_range = True
        action.frame_start = frame_start
        action.frame_end = frame_start + count
    except Exception:
        bpy.data.actions.remove(action)
        raise
    return action, slot, stats


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


def apply_take(obj: bpy.types.Object, tracks: retarget.BoneTracks, *, strip_name: str, frame_start: int,
               options: TakeOptions | None = None, settings: dict | None = None) -> WrittenTake:
    """Write a take: new Action, new NLA track on top, strip at ``frame_start`` named after the take.

    Args:
        obj: the armature object.
        tracks: keyframe values from ``retarget.retarget_motion``.
        strip_name: the sound strip's name (for the take name).
        frame_start: scene frame where the sound strip starts.
        options: scope, blend mode, influence and key reduction (default: full body, replace, dense keys).
        settings: what made the take (engine, seed, ...), stored on the Action as ``action["expgest_take"]``
            for the take list and Generate Again.

    Returns:
        Names of what was created, the key reduction's numbers, and warnings for the user.
    """
    options = options or TakeOptions()
    existing = [a.name for a in bpy.data.actions]
    if obj.animation_data is not None:
        existing += [s.name for t in obj.animation_data.nla_tracks for s in t.strips]
        existing += [t.name for t in obj.animation_data.nla_tracks]
    name = timing.take_name(obj.name, strip_name, timing.next_take_number(existing, obj.name, strip_name))
    warnings = []
    frames = tracks.quaternions.shape[0]
    rest = read_armature_rest(obj)
    action, slot, stats = write_action(obj, tracks, name, frame_start, options, rest)
    created_animation_data = obj.animation_data is None
    track = None
    try:
        animation_data = obj.animation_data or obj.animation_data_create()
        if animation_data.use_tweak_mode:
            warnings.append(f"'{obj.name}' is in NLA tweak mode, which hides the new take: exit tweak mode (Tab in "
                            "the Nonlinear Animation editor) to see it.")
        elif animation_data.action is not None:
            warnings.append(f"'{obj.name}' has an active action '{animation_data.action.name}' that plays on top of "
                            "the NLA takes; push it down or unlink it to see the new take.")
        starts = [s.frame_start for t in animation_data.nla_tracks for s in t.strips]
        track = animation_data.nla_tracks.new()
        track.name = name
        strip = track.strips.new(name, int(frame_start), action)
        strip.extrapolation = _extrapolation(starts, frame_start)
        strip.blend_type = options.blend
        if slot is not None and strip.action_slot != slot:
            strip.action_slot = slot
        strip.action_frame_start = frame_start
        strip.action_frame_end = frame_start + frames
        strip.frame_end = frame_start + frames
        if options.influence < 1.0:
            _set_influence(strip, options.influence)
        if settings is not None:
            action["expgest_take"] = dict(settings)
        if options.to_quaternion:
            keyed = sorted({c.data_path.split('"')[1] for c in _all_fcurves(action)
                            if c.data_path.endswith("rotation_quaternion")})
            converted = convert_to_quaternion(obj, [bpy.utils.unescape_identifier(b) for b in keyed],
                                              skip=(action,))
            if converted:
                warnings.append(f"{converted} bones of '{obj.name}' were switched to quaternion rotation and their "
                                "existing rotation curves converted.")
    except Exception:
        if track is not None:
            obj.animation_data.nla_tracks.remove(track)
        if created_animation_data and obj.animation_data is not None:
            obj.animation_data_clear()
        bpy.data.actions.remove(action)
        raise
    return WrittenTake(action=action.name, track=track.name, strip=strip.name, frame_start=int(frame_start),
                       frames=frames, warnings=tuple(warnings), reduction=stats)


def _set_influence(strip: bpy.types.NlaStrip, influence: float) -> None:
    """A constant influence below 1: Blender uses ``strip.influence`` only when it is animated, so the strip
    gets its influence F-curve with one key (which the animator can add to, e.g. to fade the take in)."""
    strip.use_animated_influence = True
    strip.influence = influence
    for curve in strip.fcurves:
        if curve.data_path == "influence":
            for point in curve.keyframe_points:
                point.co[1] = influence
                point.handle_left[1] = influence
                point.handle_right[1] = influence
            curve.update()


def _curve_collections(action: bpy.types.Action):
    """Every (fcurves, groups) collection of an Action: its channelbags on >= 4.4, else the Action's own."""
    if not SLOTTED_ACTIONS:
        return [(action.fcurves, action.groups)]
    return [(bag.fcurves, bag.groups) for layer in action.layers for strip in layer.strips
            for bag in strip.channelbags]


def _all_fcurves(action: bpy.types.Action) -> list:
    return [curve for fcurves, _groups in _curve_collections(action) for curve in fcurves]


def convert_to_quaternion(obj: bpy.types.Object, bones: list[str], skip: tuple = ()) -> int:
    """Switch ``bones`` to quaternion rotation so the animation they already have keeps playing.

    In every Action the character plays (its active Action and its NLA strips' Actions, except ``skip``),
    a bone's Euler or axis-angle curves are sampled at every frame of their key range, converted
    (``channels.euler_to_quaternion``, hemisphere-continuous) and written as linear quaternion keys at those
    frames, replacing them; its unanimated rotation is converted too. Quaternion bones are left alone.

    Returns:
        How many bones were switched.
    """
    adt = obj.animation_data
    actions = []
    if adt is not None:
        actions = [adt.action] + [strip.action for track in adt.nla_tracks for strip in track.strips]
    actions = [a for i, a in enumerate(actions) if a is not None and a not in skip and a not in actions[:i]]
    switched = 0
    for bone in bones:
        pose_bone = obj.pose.bones[bone]
        mode = pose_bone.rotation_mode
        if mode == "QUATERNION":
            continue
        prop = "rotation_axis_angle" if mode == "AXIS_ANGLE" else "rotation_euler"
        size = 4 if mode == "AXIS_ANGLE" else 3
        static = np.array(getattr(pose_bone, prop), dtype=np.float64)
        path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'
        for action in actions:
            for fcurves, groups in _curve_collections(action):
                curves = [fcurves.find(path, index=i) for i in range(size)]
                if not any(curves):
                    continue
                keys = np.concatenate([[p.co[0] for p in c.keyframe_points] for c in curves if c is not None])
                frames = np.unique(np.concatenate([np.arange(np.ceil(keys.min()), np.floor(keys.max()) + 1), keys]))
                values = np.stack([np.array([c.evaluate(f) for f in frames]) if c is not None
                                   else np.full(len(frames), static[i]) for i, c in enumerate(curves)], -1)
                group = next((c.group.name for c in curves if c is not None and c.group is not None), bone)
                for curve in curves:
                    if curve is not None:
                        fcurves.remove(curve)
                quaternions = (_axis_angle_quaternions(values) if mode == "AXIS_ANGLE"
                               else channels.euler_to_quaternion(values, mode))
                for component in range(4):
                    channel = Channel(group, "rotation_quaternion", component, quaternions[:, component], "QUATERNION")
                    curve = fcurves.new(f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion',
                                        index=component)
                    curve.group = groups.get(channel.bone) or groups.new(channel.bone)
                    _write_dense(curve, frames, channel.values)
        rest = (_axis_angle_quaternions(static[None]) if mode == "AXIS_ANGLE"
                else channels.euler_to_quaternion(static[None], mode))[0]
        pose_bone.rotation_mode = "QUATERNION"
        pose_bone.rotation_quaternion = rest.tolist()
        switched += 1
    return switched


def _axis_angle_quaternions(values: np.ndarray) -> np.ndarray:
    q = channels.axis_angle_to_quaternion(values)
    if len(q) > 1:
        q[1:] *= np.cumprod(np.where((q[1:] * q[:-1]).sum(-1) < 0.0, -1.0, 1.0))[:, None]
    return q
