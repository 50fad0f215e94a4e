"""Gesture statistics of a motion, to compare with how people move while talking (notes section 6).

Everything is measured on forward kinematics of the built-in skeleton, in the body's own frame (the pelvis'
position and heading removed), so the figures describe the gesture, not where the character stands.
``HUMAN_RANGES`` holds the coarse human ranges of ``shared/notes/gestures.md`` (and of the issue that asked for
this bench) for the figures that have one.

Definitions:

- movements: per wrist, the spans between successive minima of the speed (smoothed over 50 ms); a stroke is a
  movement whose peak speed is above 0.25 m/s; its duration is the time its speed stays above 20% of its peak,
  its travel the path length in that time.
- at rest: a wrist is at rest when it is below the pelvis joint's height (hanging beside the thigh), or both
  wrists are within 40 cm of each other 15 cm below the chest (hands together), and it moves slower than
  0.12 m/s (averaged over 0.3 s).
- active: a wrist not at rest. Both-hands share: frames with both active / frames with any active.
- vertical share: sum |dy| / (sum |dy| + sum |d(x, z)|) over the wrists' frame-to-frame motion.
- still while speaking: share of speech frames with a hand out of rest where neither wrist moves faster
  than 3 cm/s (a hand frozen in the air).
- worst joint jump: the largest frame-to-frame rotation of any joint, as an angular speed (rad/s); worst
  acceleration: the largest change of that speed per second (rad/s^2).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import argrelmin
from scipy.spatial import ConvexHull

from ...motion.motion import Motion
from ...motion.skeleton import JOINT_INDEX
from .kinematics import axis_angle_to_matrix, forward

J = JOINT_INDEX
_WRISTS = (J["left_wrist"], J["right_wrist"])
_FINGERS = tuple(range(25, 55))
_SPREAD_JOINTS = tuple(J[f"{side}_{finger}1"] for side in ("left", "right") for finger in ("index", "pinky", "ring"))

# name: (low, high, where it comes from)
HUMAN_RANGES: dict[str, tuple[float, float, str]] = {
    "stroke_s": (0.2, 0.5, "notes 1: strokes last 0.2-0.5 s"),
    "stroke_travel_m": (0.10, 0.40, "notes 1: 10-40 cm per stroke"),
    "strokes_per_s": (0.5, 3.0, "notes 1: one to three per second while speaking actively, fewer when calm"),
    "rest_share": (0.2, 0.55, "notes 1: a quarter to a half of the time at rest"),
    "still_speaking": (0.0, 0.1, "issue: a few % of speech frames motionless"),
    "lateral_extent_m": (0.3, 0.7, "notes 2: shoulder width plus, per side"),
    "vertical_extent_m": (0.3, 0.7, "notes 2: hip to shoulder height"),
    "vertical_share": (0.35, 0.6, "issue: about half of wrist motion vertical"),
    "both_hands_share": (0.35, 0.75, "notes 2: both hands as often as one"),
    "lr_speed_corr": (0.45, 0.9, "issue: left/right speed correlation about 0.7"),
    "worst_jump_rad_s": (0.0, 15.0, "physiological bound used by the tests"),
    "worst_accel_rad_s2": (0.0, 600.0, "bound used by the tests"),
}


def _body_frame(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Positions (T, J, 3) relative to the pelvis, with the pelvis' heading (rotation about Y) removed."""
    forward_axis = rotations[:, 0, :, 2]
    heading = np.arctan2(forward_axis[:, 0], forward_axis[:, 2])
    cos, sin = np.cos(-heading), np.sin(-heading)
    local = positions - positions[:, :1]
    x = cos[:, None] * local[..., 0] + sin[:, None] * local[..., 2]
    z = -sin[:, None] * local[..., 0] + cos[:, None] * local[..., 2]
    return np.stack([x, local[..., 1], z], axis=-1)


def _angular_speed(world: np.ndarray, fps: float) -> np.ndarray:
    """(T-1,) angular speed of rotations (T, 3, 3), rad/s."""
    relative = np.einsum("tba,tbc->tac", world[:-1], world[1:])
    return np.arccos(np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1, 1)) * fps


def _strokes(speed: np.ndarray, path: np.ndarray, fps: float) -> list[tuple[float, float]]:
    """(duration s, travel m) of each stroke in one wrist's speed (T-1,) and step lengths (T-1,)."""
    smooth = uniform_filter1d(speed, max(1, int(round(0.05 * fps))))
    minima = np.concatenate([[0], argrelmin(smooth, order=max(1, int(round(0.06 * fps))))[0], [len(smooth) - 1]])
    found = []
    for a, b in zip(minima[:-1], minima[1:], strict=True):
        if b - a < 2:
            continue
        peak = smooth[a:b].max()
        if peak < 0.25:
            continue
        above = np.flatnonzero(smooth[a:b] > 0.2 * peak)
        first, last = a + above[0], a + above[-1] + 1
        found.append(((last - first) / fps, float(path[first:last].sum())))
    return found


def gesture_stats(motion: Motion, speech: np.ndarray | None = None) -> dict[str, float]:
    """The statistics of notes section 6 for one motion.

    Args:
        motion: the motion (any fps).
        speech: (T,) bool, frames where the speaker is speaking (for ``still_speaking``); None = all frames.

    Returns:
        {name: value}: stroke_s and stroke_travel_m (medians), strokes_per_s, wrist_speed_mean / _p95 (m/s),
        rest_share, still_speaking, lateral_extent_m / vertical_extent_m / area_m2 (means over both wrists),
        wrist_height_m (mean, relative to the pelvis), vertical_share, both_hands_share, lr_speed_corr,
        torso_speed and head_speed (rad/s, means), finger_curl and finger_curl_std (rad), finger_spread (rad),
        worst_jump_rad_s, worst_accel_rad_s2.
    """
    fps = motion.fps
    poses = motion.joint_axis_angles().astype(np.float64)
    positions, rotations = forward(poses)
    body = _body_frame(positions, rotations)
    wrists = body[:, list(_WRISTS)]                                   # (T, 2, 3)
    steps = np.diff(wrists, axis=0)
    step_length = np.linalg.norm(steps, axis=-1)                      # (T-1, 2)
    speed = step_length * fps
    stats: dict[str, float] = {}

    strokes = [s for side in (0, 1) for s in _strokes(speed[:, side], step_length[:, side], fps)]
    stats["stroke_s"] = float(np.median([s[0] for s in strokes])) if strokes else 0.0
    stats["stroke_travel_m"] = float(np.median([s[1] for s in strokes])) if strokes else 0.0
    seconds = len(poses) / fps
    # Both hands stroking together count once: strokes of the faster wrist at each moment.
    stats["strokes_per_s"] = len(_strokes(speed.max(axis=1), step_length.max(axis=1), fps)) / max(seconds, 1e-9)
    stats["wrist_speed_mean"] = float(speed.mean())
    stats["wrist_speed_p95"] = float(np.percentile(speed, 95))

    slow = uniform_filter1d(np.concatenate([speed, speed[-1:]]), max(1, int(round(0.3 * fps))), axis=0) < 0.12
    chest_height = body[:, J["spine3"], 1]
    hanging = wrists[..., 1] < 0.0  # below the pelvis joint: hands beside the thighs
    together = (np.linalg.norm(wrists[:, 0] - wrists[:, 1], axis=-1) < 0.4)[:, None] & \
        (wrists[..., 1] < chest_height[:, None] - 0.15)
    rest = slow & (hanging | together)
    stats["rest_share"] = float(np.mean(rest.all(axis=1)))
    active = ~rest
    any_active = active.any(axis=1)
    stats["both_hands_share"] = float(active.all(axis=1).sum() / max(any_active.sum(), 1))
    frame_speed = np.concatenate([speed, speed[-1:]]).max(axis=1)
    speaking = np.ones(len(poses), bool) if speech is None else np.asarray(speech, bool)[:len(poses)]
    gesturing = speaking & any_active
    stats["still_speaking"] = float(np.mean(frame_speed[gesturing] < 0.03)) if gesturing.any() else 0.0

    lateral, vertical, area = [], [], []
    for side in (0, 1):
        points = wrists[:, side, :2]
        lateral.append(float(np.ptp(points[:, 0])))
        vertical.append(float(np.ptp(points[:, 1])))
        try:
            area.append(float(ConvexHull(points).volume))
        except Exception:  # noqa: BLE001 - degenerate (motionless) point sets have no hull
            area.append(0.0)
    stats["lateral_extent_m"] = float(np.mean(lateral))
    stats["vertical_extent_m"] = float(np.mean(vertical))
    stats["area_m2"] = float(np.mean(area))
    stats["wrist_height_m"] = float(wrists[..., 1].mean())
    vertical_motion = np.abs(steps[..., 1]).sum()
    horizontal_motion = np.linalg.norm(steps[..., [0, 2]], axis=-1).sum()
    stats["vertical_share"] = float(vertical_motion / max(vertical_motion + horizontal_motion, 1e-12))
    both_moving = speed.std(axis=0).min() > 1e-9
    stats["lr_speed_corr"] = float(np.corrcoef(speed[:, 0], speed[:, 1])[0, 1]) if both_moving else 0.0

    stats["torso_speed"] = float(_angular_speed(rotations[:, J["spine3"]], fps).mean())
    stats["head_speed"] = float(_angular_speed(rotations[:, J["head"]], fps).mean())
    fingers = np.linalg.norm(poses[:, list(_FINGERS)], axis=-1)
    stats["finger_curl"] = float(fingers.mean())
    stats["finger_curl_std"] = float(fingers.std(axis=0).mean())
    stats["finger_spread"] = float(np.abs(poses[:, list(_SPREAD_JOINTS), 1]).mean())

    local = axis_angle_to_matrix(poses)
    relative = np.einsum("tjba,tjbc->tjac", local[:-1], local[1:])
    jump = np.arccos(np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1, 1)) * fps
    stats["worst_jump_rad_s"] = float(jump.max())
    stats["worst_accel_rad_s2"] = float(np.abs(np.diff(jump, axis=0)).max() * fps) if len(jump) > 1 else 0.0
    return stats


def seed_difference(first: Motion, second: Motion) -> float:
    """Mean absolute difference of the wrists' body-frame positions of two motions of one clip, metres."""
    count = min(first.num_frames, second.num_frames)
    wrists = []
    for motion in (first, second):
        positions, rotations = forward(motion.joint_axis_angles()[:count].astype(np.float64), 22)
        wrists.append(_body_frame(positions, rotations)[:, list(_WRISTS)])
    return float(np.linalg.norm(wrists[0] - wrists[1], axis=-1).mean())
