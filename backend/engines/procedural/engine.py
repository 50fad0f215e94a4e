"""The procedural engine: speech-timed gesture units from prosody, with no learned weights.

How a clip becomes motion (one module per step):

1. ``prosody.analyse_prosody``: energy, speech segments, pitch and syllable/emphasis onsets (10 ms frames).
2. ``style.emotion_curves``: the emotion spans as per-frame style fields (strength continuous in 0-2).
3. ``planning.plan_gestures``: phrases -> gesture units -> strokes on accents -> key poses of each hand
   (rest -> preparation -> strokes with holds -> retraction -> rest).
4. ``channels``: keys -> per-frame hand targets (minimum-jerk movements plus drift) and body channels (weight
   shifts, soft knees, torso turn and lean, head gaze, nods and tilts, breathing, jaw).
5. ``actions``: timed text annotations (wave, point, shrug, nod, shake head, open arms) blend over the channels.
6. ``compose`` (here): body rotations, forward kinematics of the torso, the hand targets placed in the chest's
   (gesturing) or the pelvis' (resting) frame, analytic arm IK (``kinematics.solve_left_arm``), hand shapes;
   then FK checks that move a hand out where it would enter the torso or the other hand, and a joint-limit clamp.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from ...errors import AudioError
from ...motion.motion import Motion
from ...motion.resample import num_frames_for
from ...motion.skeleton import JOINT_INDEX, NUM_JOINTS, REST_JOINTS
from ...request import GenerationRequest
from ..base import SAMPLE_RATE, CancelToken, ProgressFn, no_progress
from .actions import ACTION_WORDS, Action, action_side, apply_actions, find_actions
from .channels import BodyChannels, HandChannels, body_channels, hand_channels
from .curves import smooth_noise
from .hands import hand_pose
from .kinematics import (
    ARMS,
    FINGER_LIMIT,
    JOINT_LIMITS,
    MIRROR,
    axis_rotation,
    euler,
    forward,
    matrix_to_axis_angle,
    mirror_axis_angle,
    torso_capsule_distance,
)
from .planning import Plan, plan_gestures
from .prosody import analyse_prosody
from .style import emotion_curves, style_sampler

_log = logging.getLogger(__name__)
J = JOINT_INDEX
_SPINE = (J["spine1"], J["spine2"], J["spine3"])
_SPINE_SHARE = (0.3, 0.3, 0.4)
_X = np.array([1.0, 0.0, 0.0])
_SPINE3 = REST_JOINTS[J["spine3"]]
_PELVIS = REST_JOINTS[J["pelvis"]]
# Clearances for the FK check, metres: wrist, middle of the hand and fingertips from the torso axis (the segment
# pelvis -> spine3, continued to the neck for the hand), the elbow and the middle of the forearm from it, and the
# two hands from each other (middles and fingertips).
_WRIST_CLEAR = 0.15
_TIP_CLEAR = 0.09
_ELBOW_CLEAR = 0.19
_FOREARM_CLEAR = 0.18
_HANDS_APART = 0.08
# Points of each hand relative to its wrist in the rest pose: the middle (60% of the way to the middle finger's
# last joint) and the fingertips (120%).
_HAND_POINTS = tuple(
    np.outer([0.6, 1.2], REST_JOINTS[J[f"{side}_middle3"]] - REST_JOINTS[J[f"{side}_wrist"]])
    for side in ("left", "right"))


class ProceduralEngine:
    """Speech-driven gestures without learned weights: the always-available default engine.

    Deterministic for a given request (audio, seed, emotion, text, fps); different seeds give different
    but equally plausible performances. ``warnings`` holds the sentences about ignored annotations of the last
    ``generate`` call, ``plan`` its gesture plan (units, strokes and hand keys; for tests and benches).
    """

    name = "procedural"

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.plan: Plan | None = None

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> Motion:
        """Generate motion for ``audio`` directly at ``request.fps``.

        Args:
            audio: (N,) float32 mono waveform at 16 kHz: exactly the requested range.
            request: the validated request (fps, seed, emotion spans, text annotations).
            progress: progress callback (stage names: "analysing speech", "planning gestures",
                "animating body", "checking arm collisions", "done").
            cancel: polled between stages; ``check()`` raises ``CancelledError``.

        Returns:
            Motion at ``request.fps`` with exactly ``round(N / 16000 * fps)`` frames, root translation zero.
        """
        cancel = cancel or CancelToken()
        self.warnings = []
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        duration = len(samples) / SAMPLE_RATE
        fps = float(request.fps)
        num_frames = num_frames_for(duration, fps)
        if num_frames < 1:
            raise AudioError(f"The audio range is {duration * 1000:.0f} ms long, shorter than one frame at "
                             f"{fps:g} fps; give a longer range.")
        cancel.check()
        progress("analysing speech", 0.0)
        prosody = analyse_prosody(samples, check=cancel.check)
        cancel.check()
        progress("planning gestures", 0.25)
        times = np.arange(num_frames, dtype=np.float64) / fps
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(request.seed)).spawn(6)]
        style = emotion_curves(request.emotion, times, duration)
        plan = plan_gestures(prosody, style_sampler(request.emotion, duration), duration, rngs[0])
        self.plan = plan
        actions = self._actions(request, duration)
        for warning in self.warnings:
            progress("planning gestures", 0.25, warning)
        cancel.check()
        progress("animating body", 0.5)
        hands = (hand_channels(times, plan.hands[0], style, rngs[1]),
                 hand_channels(times, plan.hands[1], style, rngs[2]))
        body = body_channels(times, prosody, plan, hands, style, rngs[3])
        apply_actions(times, actions, hands, body)
        cancel.check()
        progress("checking arm collisions", 0.8)
        poses = compose(times, hands, body, style, rngs[4], cancel.check)
        progress("done", 1.0)
        return Motion(poses=poses.reshape(num_frames, NUM_JOINTS * 3).astype(np.float32),
                      trans=np.zeros((num_frames, 3), np.float32), fps=fps)

    def _actions(self, request: GenerationRequest, duration: float) -> list[Action]:
        """(action, side 0=left 1=right, start, end) for each recognised motion annotation."""
        actions: list[Action] = []
        for note in request.text:
            if note.kind != "motion":
                continue
            start, end = max(0.0, note.start_s), min(duration, note.end_s)
            found = find_actions(note.text)
            if not found:
                message = (f"The procedural engine ignored the motion text '{note.text}' "
                           f"({note.start_s:g}–{note.end_s:g} s): it only performs {', '.join(ACTION_WORDS)}; "
                           "use the expgest engine for free-form motion descriptions.")
                self.warnings.append(message)
                _log.info(message)  # reported through self.warnings; a warning would print twice
                continue
            if end - start < 0.2:
                message = (f"The motion text '{note.text}' ({note.start_s:g}–{note.end_s:g} s) covers less than 0.2 s "
                           f"of the {duration:.2f} s audio range and was ignored; widen its time range.")
                self.warnings.append(message)
                _log.info(message)
                continue
            side = action_side(note.text)
            actions.extend((name, side, start, end) for name in found)
        return actions


def _body_poses(body: BodyChannels, style: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 55, 3) poses with the pelvis, legs, spine, neck, head, jaw and collars set (arms and hands zero)."""
    count = len(body.jaw)
    poses = np.zeros((count, NUM_JOINTS, 3))
    # Legs counter-rotate the pelvis so the feet stay planted: hip = pelvis^-1 x flexion.
    pelvis = euler(body.pelvis[:, 0], body.pelvis[:, 1], body.pelvis[:, 2])
    poses[:, 0] = matrix_to_axis_angle(pelvis)
    inverse = np.transpose(pelvis, (0, 2, 1))
    for side, (hip, knee, ankle) in enumerate((("left_hip", "left_knee", "left_ankle"),
                                                ("right_hip", "right_knee", "right_ankle"))):
        bend = body.legs[:, side]
        poses[:, J[hip]] = matrix_to_axis_angle(inverse @ axis_rotation(_X, -0.5 * bend))
        poses[:, J[knee], 0] = bend
        poses[:, J[ankle], 0] = -0.5 * bend
    for joint, share in zip(_SPINE, _SPINE_SHARE, strict=True):
        extra = -0.01 * body.breath if joint == J["spine3"] else 0.0
        poses[:, joint] = matrix_to_axis_angle(
            euler(share * body.spine[:, 0] + extra, share * body.spine[:, 1], share * body.spine[:, 2]))
    # The neck takes back part of the spine's lean so the gaze stays level-ish.
    head = body.head.copy()
    head[:, 0] -= 0.5 * (body.spine[:, 0] - style["lean"])
    poses[:, J["neck"]] = matrix_to_axis_angle(euler(0.4 * head[:, 0], 0.4 * head[:, 1], 0.4 * head[:, 2]))
    poses[:, J["head"]] = matrix_to_axis_angle(euler(0.6 * head[:, 0], 0.6 * head[:, 1], 0.6 * head[:, 2]))
    poses[:, J["jaw"], 0] = body.jaw
    for side, collar in enumerate(("left_collar", "right_collar")):
        up = np.zeros((count, 3))
        up[:, 2] = body.shoulders[:, side]  # left collar elevation about +Z; the right one mirrored
        poses[:, J[collar]] = up if side == 0 else mirror_axis_angle(up)
    return poses


def _solve_arm(side: int, hand: HandChannels, body: BodyChannels, positions: np.ndarray, rotations: np.ndarray,
               poses: np.ndarray, rows: np.ndarray, twist: np.ndarray | None = None) -> np.ndarray:
    """IK of one arm for frames ``rows``, written into ``poses``.

    The own-side target p (relative to the rest spine3) goes to the world as
    w = (1 - g) (x_spine3 + G_spine3 S p) + g (x_pelvis + G_pelvis (S p + spine3_rest - pelvis_rest)),
    g = ``grounded``, S the side's mirror (identity for the left); then into the collar frame,
    c = G_collar^T (w - x_shoulder), mirrored back into left-arm terms for the IK. ``twist`` (all frames) replaces
    the IK's forearm twist; returns the twist used on ``rows``.
    """
    prefix = "left_" if side == 0 else "right_"
    mirror = np.ones(3) if side == 0 else MIRROR
    pos = hand.pos[rows] * mirror
    chest_rot = rotations[rows, J["spine3"]]
    pelvis_rot = rotations[rows, 0]
    in_chest = positions[rows, J["spine3"]] + np.einsum("tij,tj->ti", chest_rot, pos)
    in_pelvis = positions[rows, 0] + np.einsum("tij,tj->ti", pelvis_rot, pos + _SPINE3 - _PELVIS)
    grounded = hand.grounded[rows, None]
    target = (1.0 - grounded) * in_chest + grounded * in_pelvis
    collar = rotations[rows, J[prefix + "collar"]]
    shoulder = positions[rows, J[prefix + "collar"]] + np.einsum(
        "tij,j->ti", collar, REST_JOINTS[J[prefix + "shoulder"]] - REST_JOINTS[J[prefix + "collar"]])
    pole_own = np.stack([0.4 + body.elbows[rows], -np.ones(len(rows)), -0.45 * np.ones(len(rows))], axis=1)
    world_pole = np.einsum("tij,tj->ti", chest_rot, pole_own * mirror)
    world_palm = np.einsum("tij,tj->ti", chest_rot, hand.palm[rows] * mirror)

    def to_left(vectors: np.ndarray) -> np.ndarray:
        return np.einsum("tji,tj->ti", collar, vectors) * mirror

    shoulder_rot, elbow_rot, wrist_rot, used = ARMS[side].solve(
        to_left(target - shoulder), to_left(world_pole), to_left(world_palm), hand.flex[rows],
        None if twist is None else twist[rows])
    for name, matrix in (("shoulder", shoulder_rot), ("elbow", elbow_rot), ("wrist", wrist_rot)):
        value = matrix_to_axis_angle(matrix)
        poses[rows, J[prefix + name]] = value if side == 0 else mirror_axis_angle(value)
    return used


def _no_check() -> None:
    pass


def compose(times: np.ndarray, hands: tuple[HandChannels, HandChannels], body: BodyChannels,
            style: dict[str, np.ndarray], rng: np.random.Generator, check: Callable[[], None] = _no_check,
            iterations: int = 3) -> np.ndarray:
    """Poses from all channels, checked against the torso and between the hands.

    Args:
        times: (T,) sample times, s.
        hands: the left and right hand channels (their targets are moved out in place where they collide).
        body: the body channels.
        style: per-frame emotion style curves.
        rng: generator for the finger life.
        check: called between passes (``CancelToken.check``).
        iterations: most collision passes.

    Returns:
        (T, 55, 3) float64 axis-angle, radians.

    After the IK, FK measures how deep the wrist, the middle of the hand, the fingertips, the elbow and the middle
    of the forearm come into the torso capsule (clearances ``_WRIST_CLEAR``, ``_TIP_CLEAR``, ``_ELBOW_CLEAR``,
    ``_FOREARM_CLEAR``) and how close the two hands
    come (``_HANDS_APART``); a penetration d (m) moves that hand's own-side target outwards and forwards by d,
    spread over about +-0.25 s so the correction stays smooth, and the IK runs again on those frames
    (up to ``iterations`` passes).
    """
    count = len(times)
    poses = _body_poses(body, style)
    positions, rotations = forward(poses, 15)
    all_rows = np.arange(count)
    fps = 1.0 / (times[1] - times[0]) if count > 1 else 30.0
    twists = []
    for side in (0, 1):
        # The forearm turns smoothly: the IK's twist, smoothed over about 60 ms, is used from here on.
        twist = _solve_arm(side, hands[side], body, positions, rotations, poses, all_rows)
        twist = gaussian_filter1d(twist, 0.06 * fps, mode="nearest")
        _solve_arm(side, hands[side], body, positions, rotations, poses, all_rows, twist)
        twists.append(twist)
    life = smooth_noise(times, rng, 0.9, 8)
    for side, hand in enumerate(hands):
        tension = style["tension"] * (0.3 + 0.7 * hand.active)
        pose = hand_pose(hand.shape, tension, life[:, side * 4:side * 4 + 4])
        first = J["left_index1"] if side == 0 else J["right_index1"]
        poses[:, first:first + 15] = pose if side == 0 else mirror_axis_angle(pose)
    check()
    active = all_rows
    for _ in range(iterations):
        depth = _penetration(poses, active)
        check()
        if not np.any(depth > 0):
            break
        changed_any = np.zeros(count, bool)
        for side in (0, 1):
            if not np.any(depth[side] > 0):
                continue
            held = maximum_filter1d(depth[side], 2 * int(round(0.12 * fps)) + 1)
            spread = gaussian_filter1d(held, 0.08 * fps) + depth[side]
            changed = np.flatnonzero(spread > 1e-6)
            hands[side].pos[changed, 0] += 0.8 * spread[changed]
            hands[side].pos[changed, 2] += 0.8 * spread[changed]
            _solve_arm(side, hands[side], body, positions, rotations, poses, changed, twists[side])
            changed_any[changed] = True
        active = np.flatnonzero(changed_any)
    return _clamp_joint_limits(poses)


def _penetration(poses: np.ndarray, rows: np.ndarray, block: int = 4096) -> np.ndarray:
    """(2, T) how far each hand (0 left, 1 right) comes inside its clearances on frames ``rows`` (0 elsewhere)."""
    depth = np.zeros((2, len(poses)))
    for first in range(0, len(rows), block):
        chosen = rows[first:first + block]
        positions, rotations = forward(poses[chosen], 22)
        hand_points = []
        for side in (0, 1):
            prefix = "left_" if side == 0 else "right_"
            wrist = J[prefix + "wrist"]
            points = positions[:, wrist, None] + np.einsum("tij,pj->tpi", rotations[:, wrist], _HAND_POINTS[side])
            hand_points.append(points)
            forearm = 0.5 * (positions[:, wrist] + positions[:, J[prefix + "elbow"]])
            arm = torso_capsule_distance(np.stack([positions[:, J[prefix + "elbow"]], forearm], axis=1), positions)
            # The hand is also kept off the upper chest: its capsule runs on from spine3 to the neck.
            hand = np.minimum(torso_capsule_distance(np.concatenate([positions[:, wrist, None], points], axis=1),
                                                     positions),
                              _distance_to_segment(np.concatenate([positions[:, wrist, None], points], axis=1),
                                                   positions[:, J["spine3"]], positions[:, J["neck"]]))
            depth[side, chosen] = np.maximum.reduce(
                [_ELBOW_CLEAR - arm[:, 0], _FOREARM_CLEAR - arm[:, 1], _WRIST_CLEAR - hand[:, 0],
                 _WRIST_CLEAR - hand[:, 1], _TIP_CLEAR - hand[:, 2], np.zeros(len(arm))])
        apart = np.linalg.norm(hand_points[0][:, :, None] - hand_points[1][:, None], axis=-1)
        wrists = np.linalg.norm(positions[:, J["left_wrist"]] - positions[:, J["right_wrist"]], axis=-1)
        overlap = np.maximum(np.max(_HANDS_APART - apart, axis=(1, 2)), 0.17 - wrists)
        for side in (0, 1):
            depth[side, chosen] = np.maximum(depth[side, chosen], 0.5 * overlap)
    return depth


def _distance_to_segment(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (T, K) of points (T, K, 3) from the segments start (T, 3) -> end (T, 3)."""
    a, axis = start[:, None], (end - start)[:, None]
    u = np.clip(np.sum((points - a) * axis, -1) / np.maximum(np.sum(axis * axis, -1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + u[..., None] * axis), axis=-1)


def _clamp_joint_limits(poses: np.ndarray) -> np.ndarray:
    """Scale each joint's axis-angle down to its largest allowed angle (``JOINT_LIMITS``)."""
    limits = np.full(NUM_JOINTS, FINGER_LIMIT)
    for name, limit in JOINT_LIMITS.items():
        limits[J[name]] = limit
    angle = np.linalg.norm(poses, axis=-1)
    scale = np.minimum(1.0, limits[None, :] / np.maximum(angle, 1e-12))
    return poses * scale[..., None]
