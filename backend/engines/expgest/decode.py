"""From the networks' feature space to motion: de-normalisation, smoothing, BEAT BVH and SMPL-X.

Two feature layouts (spec §2):

* audio_only, 1141 channels on the BEAT 75-joint skeleton (centimetres, Y up):
  ``[root_pos 0:3 | root_rot 3:7 (w,x,y,z) | root_vel 7:10 | root_vrt 10:13 | lpos 13:238 (75×3) |
  ltxy 238:688 (75×2×3) | lvel 688:913 | lvrt 913:1138 | gaze 1138:1141]``;
* hybrids, 994 channels on SMPL-X: ``[rot6d 0:330 (55×6, row-major interleaved (R00,R01,R10,R11,R20,R21)) |
  A 330:495 (A[0:3] = root translation, metres) | B | C | extra]``.

``behaviour="faithful"`` reproduces the reference decoders (pinned by ``fixtures/expgest/decode.pt``);
``behaviour="default"`` fixes their numerical problems: the world root quaternion is re-normalised before use,
matrix → axis-angle goes through a quaternion (stable at θ = π), and BEAT → SMPL-X is a real retarget (global
rotations matched joint by joint, with the rest-pose bone directions of the two skeletons aligned) instead of a
raw copy of local BEAT rotations onto SMPL-X joints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from ...errors import EngineError, OutputError
from ...motion import rotations as rot
from ...motion.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS
from ...vocabulary import Behaviour

STD_FLOOR = 0.01
SG_WINDOW = 15
SG_POLYORDER = 2
FRAME_TIME = 1.0 / 20.0

# --- BEAT 75-joint skeleton (names and parents: spec §2.1; same hierarchy as BEAT's BVH files) -----------------
BEAT_JOINT_NAMES: tuple[str, ...] = (
    "Hips", "Spine", "Spine1", "Spine2", "Spine3", "Neck", "Neck1", "Head", "HeadEnd",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand",
    "RightHandMiddle1", "RightHandMiddle2", "RightHandMiddle3", "RightHandMiddle4",
    "RightHandRing", "RightHandRing1", "RightHandRing2", "RightHandRing3", "RightHandRing4",
    "RightHandPinky", "RightHandPinky1", "RightHandPinky2", "RightHandPinky3", "RightHandPinky4",
    "RightHandIndex", "RightHandIndex1", "RightHandIndex2", "RightHandIndex3", "RightHandIndex4",
    "RightHandThumb1", "RightHandThumb2", "RightHandThumb3", "RightHandThumb4",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
    "LeftHandMiddle1", "LeftHandMiddle2", "LeftHandMiddle3", "LeftHandMiddle4",
    "LeftHandRing", "LeftHandRing1", "LeftHandRing2", "LeftHandRing3", "LeftHandRing4",
    "LeftHandPinky", "LeftHandPinky1", "LeftHandPinky2", "LeftHandPinky3", "LeftHandPinky4",
    "LeftHandIndex", "LeftHandIndex1", "LeftHandIndex2", "LeftHandIndex3", "LeftHandIndex4",
    "LeftHandThumb1", "LeftHandThumb2", "LeftHandThumb3", "LeftHandThumb4",
    "RightUpLeg", "RightLeg", "RightFoot", "RightForeFoot", "RightToeBase", "RightToeBaseEnd",
    "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftForeFoot", "LeftToeBase", "LeftToeBaseEnd",
)
BEAT_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4, 5, 6, 7,
    4, 9, 10, 11,
    12, 13, 14, 15,
    12, 17, 18, 19, 20,
    17, 22, 23, 24, 25,
    12, 27, 28, 29, 30,
    27, 32, 33, 34,
    4, 36, 37, 38,
    39, 40, 41, 42,
    39, 44, 45, 46, 47,
    44, 49, 50, 51, 52,
    39, 54, 55, 56, 57,
    54, 59, 60, 61,
    0, 63, 64, 65, 66, 67,
    0, 69, 70, 71, 72, 73,
)
NUM_BEAT_JOINTS = 75
# Feet and toes (RightFoot … RightToeBaseEnd, LeftFoot … LeftToeBaseEnd): the reference zeroes them for SMPL-X.
BEAT_FEET = (65, 66, 67, 68, 71, 72, 73, 74)
# SMPL-X joint s receives BEAT joint BEAT_FOR_SMPLX[s] (the reference's table; −1 = jaw/eyes, left at rest).
BEAT_FOR_SMPLX: tuple[int, ...] = (
    0, 69, 63, 1, 70, 64, 2, 71, 65, 3, 72, 66, 4, 36, 9, 5, 37, 10, 38, 11, 39, 12,
    -1, -1, -1,
    55, 56, 57, 40, 41, 42, 50, 51, 52, 45, 46, 47, 59, 60, 61,
    28, 29, 30, 13, 14, 15, 23, 24, 25, 18, 19, 20, 32, 33, 34,
)
# Default retarget: SMPL-X joint s takes the *global* rotation of this BEAT joint, so that BEAT joints without an
# SMPL-X counterpart (Spine1/Neck1 in the chain, the carpal Index/Ring/Pinky joints) still contribute.
_BEAT_GLOBAL_FOR_SMPLX: tuple[int, ...] = (
    0, 69, 63, 1, 70, 64, 2, 71, 65, 3, 72, 66, 6, 36, 9, 7, 37, 10, 38, 11, 39, 12,
    -1, -1, -1,
    55, 56, 57, 40, 41, 42, 50, 51, 52, 45, 46, 47, 59, 60, 61,
    28, 29, 30, 13, 14, 15, 23, 24, 25, 18, 19, 20, 32, 33, 34,
)


# --- generic steps ---------------------------------------------------------------------------------------------

def denormalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """x · max(std, 0.01) + mean, in float64.

    Args:
        x: (T, C) normalised features.
        mean: (C,) training mean.
        std: (C,) training standard deviation (entries below 0.01 are clipped, as in training).

    Returns:
        (T, C) float64 features.
    """
    std = np.maximum(np.asarray(std, dtype=np.float64).reshape(-1), STD_FLOOR)
    return np.asarray(x, dtype=np.float64) * std + np.asarray(mean, dtype=np.float64).reshape(-1)


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x − mean) / max(std, 0.01): the inverse of ``denormalise`` (float64)."""
    std = np.maximum(np.asarray(std, dtype=np.float64).reshape(-1), STD_FLOOR)
    return (np.asarray(x, dtype=np.float64) - np.asarray(mean, dtype=np.float64).reshape(-1)) / std


def smooth(x: np.ndarray, behaviour: Behaviour = "default") -> np.ndarray:
    """Savitzky–Golay filter (window 15, order 2, scipy's default ``interp`` ends) on every channel over time.

    Sequences shorter than 15 frames: ``faithful`` fails like the reference; ``default`` uses the longest odd
    window that fits (no filtering below 5 frames).

    Args:
        x: (T, C) features.
        behaviour: see above.

    Returns:
        (T, C) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    window = SG_WINDOW
    if behaviour == "faithful" and len(x) < SG_WINDOW:
        raise EngineError(f"The faithful ExpGest smoothing needs at least {SG_WINDOW} frames (0.75 s of audio), got "
                          f"{len(x)}. Use a longer audio range or behaviour 'default'.")
    if behaviour == "default" and len(x) < SG_WINDOW:
        window = len(x) if len(x) % 2 == 1 else len(x) - 1
        if window <= SG_POLYORDER + 2:
            return x.copy()
    return savgol_filter(x, window, SG_POLYORDER, axis=0)


# --- the reference's own numerics (behaviour="faithful" only; quaternions (w, x, y, z)) ----------------------------
# Everything else goes through backend.motion.rotations; these three differ from it on purpose, so that the
# reference fixtures (fixtures/expgest/decode.pt) still match.

def faithful_quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors by quaternions used as given: v′ = v + w·t + q⃗ × t with t = 2 q⃗ × v.

    Differs from ``rotations.quat_apply`` (which normalises q): the reference applies its smoothed, slightly
    off-unit root quaternion without normalising it (ZEGGS ``quat.mul_vec``).
    """
    q = np.asarray(q, dtype=np.float64)
    t = 2.0 * np.cross(q[..., 1:], v)
    return v + q[..., 0:1] * t + np.cross(q[..., 1:], t)


def faithful_quat_to_euler_zyx(q: np.ndarray) -> np.ndarray:
    """Quaternion → intrinsic Z-Y-X Euler angles (R = Rz(a)·Ry(b)·Rx(c)), radians, as (a, b, c).

    a = atan2(2(wz + xy), 1 − 2(y² + z²)), b = asin(clip(2(wy − xz), −1, 1)), c = atan2(2(wx + yz), 1 − 2(x² + y²)).
    Differs from ``rotations.matrix_to_euler(quat_to_matrix(q))`` for non-unit q: the reference feeds its
    un-normalised root quaternion to these unit-quaternion formulas.

    Args:
        q: (..., 4).

    Returns:
        (..., 3) (a, b, c), the dtype of ``q``.
    """
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)),
        np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0)),
        np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y)),
    ], axis=-1)


def faithful_matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """The reference's matrix → axis-angle: θ = acos(clip((tr R − 1)/2)), axis = (R21−R12, R02−R20, R10−R01)/‖·‖.

    Differs from ``rotations.matrix_to_axis_angle`` (Shepperd quaternion + atan2): unstable near θ = π (the
    skew part vanishes), kept so that the hybrid fixtures match.
    """
    m = np.asarray(m, dtype=np.float64)
    cos = np.clip((m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    axis = np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(norm > 0, axis / np.where(norm > 0, norm, 1.0), 0.0)
    return unit * theta[..., None]


# --- audio_only: 1141 → BEAT skeleton -----------------------------------------------------------------------------

@dataclass
class BeatPose:
    """Decoded BEAT-skeleton motion.

    Attributes:
        positions: (T, 75, 3) float64 local joint positions (cm); joint 0 is the world Hips position.
        quats: (T, 75, 4) float32 local rotations (w, x, y, z); joint 0 is the world Hips rotation.
        rotations_deg: (T, 75, 3) float32 intrinsic Z-Y-X Euler angles in degrees, in BVH channel order (Z, Y, X).
    """

    positions: np.ndarray
    quats: np.ndarray
    rotations_deg: np.ndarray


def decode_beat(feats: np.ndarray, behaviour: Behaviour = "default") -> BeatPose:
    """1141-dim features (de-normalised) → BEAT 75-joint local transforms.

    Steps: (1) ltxy cast to float32 (as the reference), each joint's two vectors are the first two columns of R
    (the plain 6D column layout, Gram–Schmidt) → quaternion; (2) world placement of joint 0: lpos₀ ← root_rot ⊗
    lpos₀ + root_pos, lrot₀ ← root_rot ⊗ lrot₀ (float32 store); (3) Euler Z-Y-X in degrees. ``faithful`` uses
    root_rot as stored, with the reference's formulas for steps 2-3 (``faithful_quat_rotate``,
    ``faithful_quat_to_euler_zyx``); ``default`` normalises it first.

    Args:
        feats: (T, 1141) float features (already smoothed if wanted).
        behaviour: see above.

    Returns:
        The decoded pose.
    """
    feats = np.asarray(feats, dtype=np.float64)
    frames = feats.shape[0]
    root_pos = feats[:, 0:3]
    root_rot = feats[:, 3:7]
    positions = feats[:, 13:238].reshape(frames, NUM_BEAT_JOINTS, 3).copy()
    ltxy = feats[:, 238:688].reshape(frames, NUM_BEAT_JOINTS, 6).astype(np.float32).astype(np.float64)
    quats = rot.matrix_to_quat(rot.rot6d_columns_to_matrix(ltxy)).astype(np.float32)
    if behaviour == "faithful":
        positions[:, 0] = faithful_quat_rotate(root_rot, positions[:, 0]) + root_pos
        quats[:, 0] = rot.quat_multiply(root_rot, quats[:, 0])
        rotations_deg = np.degrees(faithful_quat_to_euler_zyx(quats)).astype(np.float32)
    else:
        root_rot = rot.quat_normalize(root_rot)
        positions[:, 0] = rot.quat_apply(root_rot, positions[:, 0]) + root_pos
        quats[:, 0] = rot.quat_multiply(root_rot, quats[:, 0])
        rotations_deg = rot.matrix_to_euler(rot.quat_to_matrix(quats), "ZYX", degrees=True).astype(np.float32)
    return BeatPose(positions=positions, quats=quats, rotations_deg=rotations_deg)


def format_beat_bvh(pose: BeatPose, frame_time: float = FRAME_TIME) -> str:
    """BVH text of a BEAT pose: OFFSETs = frame-0 local positions, root 6 channels (position then Z Y X),
    other joints Z Y X rotations, ``%f`` numbers, End Sites with zero offset on leaves.

    Args:
        pose: the decoded pose.
        frame_time: seconds per frame (0.05 at 20 fps).

    Returns:
        The whole file as a string.
    """
    offsets = pose.positions[0]
    children: list[list[int]] = [[] for _ in range(NUM_BEAT_JOINTS)]
    for joint, parent in enumerate(BEAT_PARENTS):
        if parent >= 0:
            children[parent].append(joint)
    lines = ["HIERARCHY"]

    def write_joint(joint: int, depth: int) -> None:
        indent = "\t" * depth
        lines.append(f"{indent}{'ROOT' if joint == 0 else 'JOINT'} {BEAT_JOINT_NAMES[joint]}")
        lines.append(f"{indent}{{")
        lines.append(f"{indent}\tOFFSET {offsets[joint, 0]:f} {offsets[joint, 1]:f} {offsets[joint, 2]:f}")
        if joint == 0:
            lines.append(f"{indent}\tCHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation ")
        else:
            lines.append(f"{indent}\tCHANNELS 3 Zrotation Yrotation Xrotation")
        for child in children[joint]:
            write_joint(child, depth + 1)
        if not children[joint]:
            lines.append(f"{indent}\tEnd Site")
            lines.append(f"{indent}\t{{")
            lines.append(f"{indent}\t\tOFFSET 0.000000 0.000000 0.000000")
            lines.append(f"{indent}\t}}")
        lines.append(f"{indent}}}")

    write_joint(0, 0)
    lines.append("MOTION")
    lines.append(f"Frames: {len(pose.positions)}")
    lines.append(f"Frame Time: {frame_time:f}")
    for frame in range(len(pose.positions)):
        values = [f"{v:f}" for v in pose.positions[frame, 0]]
        values += [f"{v:f}" for v in pose.rotations_deg[frame].reshape(-1)]
        lines.append(" ".join(values) + " ")
    return "\n".join(lines) + "\n"


def write_beat_bvh(path: str | os.PathLike[str], pose: BeatPose, frame_time: float = FRAME_TIME) -> Path:
    """Write ``format_beat_bvh`` atomically (temporary file + rename).

    Raises:
        OutputError: the folder does not exist or is not writable.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(format_beat_bvh(pose, frame_time), encoding="ascii")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Could not write the BVH file {path}: {exc.strerror or exc}. "
                          "Choose a folder that exists and that you can write to.") from exc
    return path


def beat_to_smplx_faithful(pose: BeatPose) -> tuple[np.ndarray, np.ndarray]:
    """The reference's BEAT → SMPL-X copy: local BEAT rotations placed into SMPL-X slots, no retargeting.

    Feet/toe quaternions are multiplied by 0 (→ no rotation), jaw and eyes stay at rest, trans = Hips × 0.01.

    Args:
        pose: decoded BEAT pose (joint 0 world-placed).

    Returns:
        poses (T, 55, 3) float64 axis-angle, trans (T, 3) float64 metres.
    """
    quats = pose.quats.copy()
    quats[:, list(BEAT_FEET)] *= 0
    axis_angle = rot.quat_to_axis_angle(quats.astype(np.float64))  # zero quaternions → no rotation
    poses = np.zeros((len(quats), NUM_JOINTS, 3), dtype=np.float64)
    for slot, beat in enumerate(BEAT_FOR_SMPLX):
        if beat >= 0:
            poses[:, slot] = axis_angle[:, beat]
    return poses, pose.positions[:, 0] * 0.01


def _smplx_bone_child(joint: int) -> int | None:
    # The child that defines a joint's bone direction: the only child, the middle finger for wrists, the head for
    # the neck; None for the pelvis, spine3 (three children), eyes, jaw and finger tips.
    special = {20: 28, 21: 43, 12: 15}
    if joint in special:
        return special[joint]
    kids = [j for j, p in enumerate(PARENTS) if p == joint]
    return kids[0] if len(kids) == 1 else None


def _beat_bone_child(joint: int) -> int | None:
    special = {12: 13, 39: 40, 4: 5, 0: None}
    if joint in special:
        return special[joint]
    kids = [j for j, p in enumerate(BEAT_PARENTS) if p == joint]
    return kids[0] if len(kids) == 1 else None


def beat_to_smplx_retarget(pose: BeatPose, rest_joints: np.ndarray = REST_JOINTS) -> tuple[np.ndarray, np.ndarray]:
    """Retarget BEAT motion onto the SMPL-X skeleton (the default decoder).

    Both skeletons have identity rest orientations with Y up and +Z forward, but different joint sets and rest
    bone directions. Passes:

    1. BEAT global rotations G_b by forward kinematics of the local quaternions (root already world-placed).
    2. Rest correction per SMPL-X joint s with a bone: C_s = the smallest rotation taking the SMPL-X rest bone
       direction (child − joint, from ``rest_joints``) onto the BEAT rest bone direction (the child's BEAT
       offset, constant over time), so that a BEAT rest pose maps to bones pointing the same way.
    3. SMPL-X global rotations G_s = G_{b(s)} · C_s, with b(s) the BEAT joint whose *global* rotation s follows
       (so BEAT joints missing in SMPL-X, e.g. Neck1 and the carpal finger joints, are composed in rather than
       dropped); feet and toes follow the shin (as in the reference), jaw and eyes follow the head.
    4. Local rotations L_s = G_{parent(s)}ᵀ · G_s, then axis-angle (stable conversion).

    Args:
        pose: decoded BEAT pose (joint 0 world-placed, centimetres).
        rest_joints: (55, 3) SMPL-X rest joint centres, metres.

    Returns:
        poses (T, 55, 3) float64 axis-angle, trans (T, 3) float64 metres (Hips world position × 0.01).
    """
    frames = len(pose.quats)
    local = rot.quat_to_matrix(pose.quats.astype(np.float64))
    global_beat = np.empty_like(local)
    for joint, parent in enumerate(BEAT_PARENTS):
        global_beat[:, joint] = local[:, joint] if parent < 0 else global_beat[:, parent] @ local[:, joint]
    offsets = pose.positions[0]
    feet = {7, 8, 10, 11}  # SMPL-X ankles and feet follow the shins (no reliable BEAT foot rest direction)
    global_smplx = np.empty((frames, NUM_JOINTS, 3, 3))
    for joint in range(NUM_JOINTS):
        source = _BEAT_GLOBAL_FOR_SMPLX[joint]
        if joint in feet or source < 0:
            global_smplx[:, joint] = global_smplx[:, PARENTS[joint]]
            continue
        correction = np.eye(3)
        smplx_child = _smplx_bone_child(joint)
        beat_child = _beat_bone_child(source)
        if smplx_child is not None and beat_child is not None:
            correction = rot.quat_to_matrix(rot.quat_between(rest_joints[smplx_child] - rest_joints[joint],
                                                             offsets[beat_child]))
        global_smplx[:, joint] = global_beat[:, source] @ correction
    local_smplx = np.empty_like(global_smplx)
    for joint in range(NUM_JOINTS):
        parent = PARENTS[joint]
        local_smplx[:, joint] = global_smplx[:, joint] if parent < 0 else (
            np.swapaxes(global_smplx[:, parent], -1, -2) @ global_smplx[:, joint])
    return rot.matrix_to_axis_angle(local_smplx), pose.positions[:, 0] * 0.01


def beat_feats_to_smplx(feats: np.ndarray, behaviour: Behaviour = "default") -> tuple[np.ndarray, np.ndarray]:
    """1141-dim features (de-normalised, smoothed) → SMPL-X poses (T, 55, 3) and trans (T, 3), float64."""
    pose = decode_beat(feats, behaviour)
    if behaviour == "faithful":
        return beat_to_smplx_faithful(pose)
    return beat_to_smplx_retarget(pose)


# --- hybrids: 994 → SMPL-X ------------------------------------------------------------------------------------------

def hybrid_feats_to_smplx(feats: np.ndarray, behaviour: Behaviour = "default") -> tuple[np.ndarray, np.ndarray]:
    """994-dim features (de-normalised, smoothed) → SMPL-X axis-angle and translation.

    rot6d [0:330] → (T, 55) rotation matrices by Gram–Schmidt, then axis-angle (``faithful``: the reference's
    trace formula; ``default``: the stable quaternion route); trans = [330:333].

    Args:
        feats: (T, 994).
        behaviour: see above.

    Returns:
        poses (T, 55, 3) float64, trans (T, 3) float64.
    """
    feats = np.asarray(feats, dtype=np.float64)
    matrices = rot.rot6d_interleaved_to_matrix(feats[:, 0:330].reshape(len(feats), NUM_JOINTS, 6))
    convert = faithful_matrix_to_axis_angle if behaviour == "faithful" else rot.matrix_to_axis_angle
    return convert(matrices), feats[:, 330:333].copy()
