"""Retargeting an SMPL-X Motion onto any armature: pure numpy, no bpy (HOUSE_STYLE 1 and 2).

The Motion (DESIGN.md section 2) holds per-joint parent-relative axis-angle rotations in the SMPL-X
canonical frame (Y up, +Z forward, metres) and a root translation. A Blender armature has its own rest
pose: every bone has a rest matrix ``L_b`` in armature space (``bone.matrix_local``), any roll, maybe extra
bones, maybe different proportions, and the armature object may be rotated, scaled or moved.

What we solve (per frame, per mapped bone ``b`` driven by SMPL-X joint ``j``)::

    pose-space rotation of b  =  A G_j A^T  R(L_b)                                  (1)

i.e. the bone's orientation change from its rest equals joint ``j``'s global SMPL-X rotation ``G_j``,
conjugated into armature axes by the alignment rotation ``A`` (SMPL-X canonical -> armature space).
Blender composes a pose bone as ``P_b = P_parent  L_parent^-1 L_b  Basis_b``, so the pose-bone local
rotation (``rotation_quaternion``) that satisfies (1) is::

    Q_b = (R(P_parent) R(L_parent)^T R(L_b))^T  A G_j A^T  R(L_b)                    (2)

which for a parent that is itself mapped reduces to ``R(L_b)^T A R_j A^T R(L_b)`` with ``R_j`` the
SMPL-X local rotation. The root joint (pelvis) also gets a translation: its head moves from its rest
position by ``s A trans_t`` (``s`` the armature/SMPL-X size ratio), written as pose ``location`` in the
bone's rest frame.

The pipeline (``retarget_motion``) is a sequence of pure passes, each documented with its
preconditions: ``fit_frame_count`` (operator side) -> ``local_rotations`` -> ``global_rotations`` ->
``align_rest_frames`` -> ``solve_pose_rotations`` -> ``solve_root_location`` -> ``make_hemisphere_continuous``.
Rotations travel as unit quaternions (w, x, y, z) so every per-frame step is elementwise numpy.
The only bpy step, writing F-curves, lives in ``keyframes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend.motion.rotations import slerp
from .backend.motion.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS

# SMPL-X canonical frame (Y up, +Z forward, +X the body's left) -> Blender's convention for a
# character standing in the world (Z up, facing -Y, +X the body's left): a +90 degree turn about X.
SMPLX_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


class RetargetError(Exception):
    """The armature cannot be driven; the message says which bone and what to do."""

    def __init__(self, reason: str, bone: str | None = None) -> None:
        message = f"Bone '{bone}': {reason}" if bone else reason
        super().__init__(message)
        self.bone = bone
        self.reason = reason


@dataclass(frozen=True)
class ArmatureRest:
    """The rest pose of an armature, read from Blender once (``keyframes.read_armature_rest``).

    Attributes:
        names: bone names, parents before children.
        parents: index into ``names`` of each bone's parent, -1 for none.
        rest_matrices: (B, 4, 4) float64 ``bone.matrix_local`` (armature space).
        joint_of_bone: SMPL-X joint index driving each bone, -1 for bones the Motion does not drive.
        connected: (B,) bool, ``bone.use_connect`` (a connected bone ignores its pose location).
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_matrices: np.ndarray
    joint_of_bone: tuple[int, ...]
    connected: tuple[bool, ...]
    # Any rig (``rigmap.rest_from_map``); all None for an SMPL-X armature, which needs none of them.
    blend_joint: tuple[int, ...] | None = None  # chains: a second joint whose rotation is blended in
    blend_weight: tuple[float, ...] | None = None  # its slerp weight (0 = joint_of_bone only)
    anchor_of_bone: tuple[int, ...] | None = None  # SMPL-X joint at this bone's head (alignment), -1 none
    aim_bone: tuple[int, ...] | None = None  # bone whose head gives the rest direction; -1 inherit parent's
    aim_direction: np.ndarray | None = None  # (B, 3) the same segment's SMPL-X rest direction (canonical frame)
    side_bones: tuple[tuple[int, int], ...] | None = None  # (from, to) bones of a second direction, -1 none
    side_direction: np.ndarray | None = None  # (B, 3) its SMPL-X rest direction
    spine_span: tuple[tuple[float, float], ...] | None = None  # spine bones: (from, to) along SMPL-X's spine, 0-1
    switches: tuple[tuple[str, str, float], ...] = ()  # (bone, custom property, value) keyed with the take
    twist_share: tuple[tuple[int, int, float], ...] | None = None  # twist bones: (forearm, hand, fraction)


@dataclass(frozen=True)
class Alignment:
    """How the SMPL-X canonical frame sits in armature space: ``x_arm = scale * rotation @ x_smplx + offset``."""

    rotation: np.ndarray  # (3, 3)
    scale: float
    offset: np.ndarray  # (3,)


@dataclass(frozen=True)
class BoneTracks:
    """Keyframe values for one take.

    Attributes:
        bone_names: the driven bones, (B',) in the armature's hierarchy order.
        quaternions: (T, B', 4) float64 pose-bone ``rotation_quaternion`` (w, x, y, z), hemisphere-continuous.
        root_bone: the bone that receives the root translation.
        root_location: (T, 3) float64 pose-bone ``location`` of ``root_bone`` (its rest frame, armature units).
    """

    bone_names: tuple[str, ...]
    quaternions: np.ndarray
    root_bone: str
    root_location: np.ndarray
    switches: tuple[tuple[str, str, float], ...] = ()  # (bone, custom property, value): e.g. Rigify IK/FK to FK


# ---------------------------------------------------------------------------------------------------
# Rotation helpers (w, x, y, z quaternions; radians)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula ``R = I + sin(theta) K + (1 - cos(theta)) K^2``.

    Args:
        axis_angle: (..., 3) rotation vectors, radians.

    Returns:
        (..., 3, 3) float64 rotation matrices.
    """
    vectors = np.asarray(axis_angle, dtype=np.float64)
    theta = np.linalg.norm(vectors, axis=-1)
    safe = np.where(theta > 1e-12, theta, 1.0)
    axis = vectors / safe[..., None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(vectors.shape[:-1] + (3, 3))
    sin = np.sin(theta)[..., None, None]
    one_minus_cos = (1.0 - np.cos(theta))[..., None, None]
    eye = np.broadcast_to(np.eye(3), skew.shape)
    return eye + sin * skew + one_minus_cos * (skew @ skew)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices to unit quaternions (w, x, y, z), w >= 0, numerically stable branch per element.

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) float64 unit quaternions.
    """
    m = np.asarray(matrix, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate squared magnitudes (4w^2, 4x^2, 4y^2, 4z^2); take the largest for stability.
    candidates = np.stack([1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22,
                           1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], axis=-1)
    best = np.argmax(candidates, axis=-1)
    root = np.sqrt(np.maximum(np.take_along_axis(candidates, best[..., None], -1)[..., 0], 1e-300))
    quats = np.empty(m.shape[:-2] + (4,))
    pairs = (
        (1.0, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]),
        (m[..., 2, 1] - m[..., 1, 2], 1.0, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]),
        (m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1.0, m[..., 1, 2] + m[..., 2, 1]),
        (m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1.0),
    )
    for case, terms in enumerate(pairs):
        mask = best == case
        if not np.any(mask):
            continue
        r = root[mask]
        for component, term in enumerate(terms):
            # The diagonal component is r/2, the others (difference or sum of off-diagonals) / (2r).
            quats[mask, component] = r / 2.0 if component == case else np.asarray(term)[mask] / (2.0 * r)
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    return np.where(quats[..., :1] < 0.0, -quats, quats)


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) to rotation matrices.

    Args:
        quaternion: (..., 4).

    Returns:
        (..., 3, 3) float64.
    """
    q = np.asarray(quaternion, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return np.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """``q = (cos(theta/2), sin(theta/2) axis)``, elementwise (no per-matrix loops).

    Args:
        axis_angle: (..., 3) rotation vectors, radians.

    Returns:
        (..., 4) float64 unit quaternions (w, x, y, z).
    """
    vectors = np.asarray(axis_angle, dtype=np.float64)
    theta = np.linalg.norm(vectors, axis=-1)
    half = 0.5 * theta
    # sin(theta/2)/theta, with its Taylor series near 0 (1/2 - theta^2/48).
    safe = np.where(theta > 1e-8, theta, 1.0)
    scale = np.where(theta > 1e-8, np.sin(half) / safe, 0.5 - theta * theta / 48.0)
    return np.concatenate([np.cos(half)[..., None], vectors * scale[..., None]], axis=-1)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a b`` (the rotation b, then a), broadcasting over leading axes.

    Args:
        a: (..., 4) quaternions (w, x, y, z).
        b: (..., 4) quaternions.

    Returns:
        (..., 4) float64.
    """
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse rotation of unit quaternions: ``(w, -x, -y, -z)``."""
    return np.asarray(q, dtype=np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


# ---------------------------------------------------------------------------------------------------
# The passes


def local_rotations(poses: np.ndarray) -> np.ndarray:
    """Pass 1: the Motion's axis-angle poses as quaternions.

    Precondition: ``poses`` is (T, 165) or (T, 55, 3), SMPL-X joint order.

    Returns:
        (T, 55, 4) float64 parent-relative rotations ``R_j`` (w, x, y, z).
    """
    poses = np.asarray(poses, dtype=np.float64)
    return axis_angle_to_quaternion(poses.reshape(len(poses), NUM_JOINTS, 3))


def global_rotations(local: np.ndarray) -> np.ndarray:
    """Pass 2: forward kinematics of orientations, ``G_j = G_parent(j) R_j``, ``G_0 = R_0``.

    Precondition: ``local`` is (T, 55, 4); SMPL-X parents precede children (they do).

    Returns:
        (T, 55, 4) float64 global rotations in the SMPL-X canonical frame.
    """
    result = np.empty_like(local)
    for joint, parent in enumerate(PARENTS):
        result[:, joint] = local[:, joint] if parent < 0 else quaternion_multiply(result[:, parent], local[:, joint])
    return result


def align_rest_frames(rest: ArmatureRest, rest_joints: np.ndarray = REST_JOINTS) -> Alignment:
    """Pass 3: where the SMPL-X canonical frame sits in armature space (Umeyama similarity fit).

    Runs on rest poses only. Fits ``head_b ~ s A p_j + c`` over every mapped bone, where ``head_b`` is the
    bone's rest head in armature space and ``p_j`` the SMPL-X rest joint, so an armature in any
    orientation (Y-up data with a rotated object, Z-up data, ...) and of any size is handled. The fitted
    rotation is snapped to the nearest axis permutation when it is within 10 degrees of one, because
    SMPL-X rigs are built axis-aligned and a small body-shape difference must not tilt the motion.

    Args:
        rest: the armature's rest pose with its bone-to-joint map.
        rest_joints: (55, 3) SMPL-X rest joints of the skeleton the Motion was made for, metres.

    Returns:
        The alignment (rotation A, scale s, offset c).

    Raises:
        RetargetError: when fewer than 4 non-coplanar joints are mapped.
    """
    heads = rest.rest_matrices[:, :3, 3]
    anchors = rest.anchor_of_bone if rest.anchor_of_bone is not None else rest.joint_of_bone
    pairs = [(b, j) for b, j in enumerate(anchors) if j >= 0]
    if len(pairs) < 4:
        raise RetargetError("The armature maps fewer than 4 SMPL-X joints; it is not an SMPL-X armature.")
    target = np.array([heads[b] for b, _ in pairs])
    source = np.array([rest_joints[j] for _, j in pairs], dtype=np.float64)
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_c, target_c = source - source_mean, target - target_mean
    covariance = target_c.T @ source_c / len(pairs)
    u, sigma, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    sign[2, 2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ sign @ vt
    variance = (source_c ** 2).sum() / len(pairs)
    if variance < 1e-12 or sigma[1] < 1e-9 * max(sigma[0], 1e-12):
        raise RetargetError("The armature's SMPL-X bones are collinear; cannot find its orientation.")
    snapped = np.round(rotation)
    if (np.abs(snapped).sum(0) == 1).all() and (np.abs(snapped).sum(1) == 1).all() \
            and abs(np.linalg.det(snapped) - 1.0) < 1e-9 and np.trace(snapped.T @ rotation) > 1 + 2 * np.cos(0.1745):
        rotation = snapped
    scale = float(np.trace(np.diag(sigma) @ sign) / variance)
    offset = target_mean - scale * rotation @ source_mean
    return Alignment(rotation=rotation, scale=scale, offset=offset)


def solve_pose_rotations(global_rot: np.ndarray, rest: ArmatureRest, alignment: Alignment) -> np.ndarray:
    """Pass 4: pose-bone local rotations ``Q_b`` for every bone, equation (2) of the module docstring.

    Runs in the armature's hierarchy order (parents first), in quaternions (elementwise, fast). Bones the
    Motion does not drive keep their rest pose (``Q_b = I``) and pass their parent's motion on, so extra
    bones (a ``root`` above the pelvis, twist bones) are fine.

    Args:
        global_rot: (T, 55, 4) SMPL-X global rotations ``G_j``.
        rest: the armature rest pose.
        alignment: from ``align_rest_frames``.

    Returns:
        (T, B, 4) float64 pose-bone local rotations (w, x, y, z) in the armature's bone order.
    """
    frames = global_rot.shape[0]
    count = len(rest.names)
    a = matrix_to_quaternion(alignment.rotation)
    rest_rot = matrix_to_quaternion(_orthonormal(rest.rest_matrices[:, :3, :3]))
    joints = np.array(rest.joint_of_bone)
    driven = np.flatnonzero(joints >= 0)
    # 1. Target pose-space orientation of every driven bone at once: A G_j A^T C_b R(L_b), where C_b turns
    #    the rig's rest segment into the SMPL-X rest segment (identity for an SMPL-X rig), and G_j is
    #    blended between two joints for bones of a chain of another length.
    source = global_rot[:, joints[driven]]
    if rest.blend_joint is not None:
        other = np.array(rest.blend_joint)[driven]
        weight = np.array(rest.blend_weight, dtype=np.float64)[driven]
        mixed = np.flatnonzero(weight > 0.0)
        if len(mixed):
            source = source.copy()
            source[:, mixed] = slerp(source[:, mixed], global_rot[:, other[mixed]], weight[mixed])
    if rest.spine_span is not None:
        source = _aim_spine(source, global_rot, rest, driven)
    global_in_armature = quaternion_multiply(quaternion_multiply(a, source), quaternion_conjugate(a))
    correction = rest_corrections(rest, alignment)
    pose_rot = np.empty((frames, count, 4))
    pose_rot[:, driven] = quaternion_multiply(global_in_armature, quaternion_multiply(correction[driven],
                                                                                      rest_rot[driven]))
    # 2. Bones the Motion does not drive keep Basis = I: their pose is their parent's carried by the rest offset.
    #    R(P_parent) R(L_parent)^T R(L_b) is "where the bone points when its own Basis is identity".
    parents = np.array(rest.parents)
    relative = rest_rot.copy()
    has_parent = np.flatnonzero(parents >= 0)
    relative[has_parent] = quaternion_multiply(quaternion_conjugate(rest_rot[parents[has_parent]]),
                                               rest_rot[has_parent])
    for bone in range(count):
        if joints[bone] < 0:
            parent = parents[bone]
            pose_rot[:, bone] = relative[bone] if parent < 0 else quaternion_multiply(pose_rot[:, parent],
                                                                                       relative[bone])
    # 2b. Forearm twist bones take their share of the hand's twist about the forearm (mesh deformation); an
    #     inline twist bone is then the hand's parent, and step 3 solves the hand below it.
    twisted = _share_twist(pose_rot, rest_rot, rest)
    driven = np.union1d(driven, twisted).astype(int)
    # 3. Q_b = chain^-1 target for the driven bones, with chain = R(P_parent) R(L_parent)^T R(L_b).
    local = np.empty((frames, count, 4))
    local[:] = np.array([1.0, 0.0, 0.0, 0.0])
    with_parent = driven[parents[driven] >= 0]
    roots = driven[parents[driven] < 0]
    chain = quaternion_multiply(pose_rot[:, parents[with_parent]], relative[with_parent])
    local[:, with_parent] = quaternion_multiply(quaternion_conjugate(chain), pose_rot[:, with_parent])
    local[:, roots] = quaternion_multiply(quaternion_conjugate(rest_rot[roots]), pose_rot[:, roots])
    return local


def _share_twist(pose_rot: np.ndarray, rest_rot: np.ndarray, rest: ArmatureRest) -> np.ndarray:
    """Set the pose of each forearm twist bone (in place); returns their indices.

    The hand's rotation relative to the forearm, ``E = (P_F L_F^T)^T (P_H L_H^T)``, is split into swing and
    twist about the forearm's rest axis; the twist bone turns with the forearm plus ``fraction`` of that
    twist angle.
    """
    if rest.twist_share is None:
        return np.zeros(0, dtype=int)
    heads = rest.rest_matrices[:, :3, 3]
    done = []
    for bone, (forearm, hand, fraction) in enumerate(rest.twist_share):
        if forearm < 0 or hand < 0:
            continue
        axis = heads[hand] - heads[forearm]
        if np.linalg.norm(axis) < 1e-9:
            continue
        axis = axis / np.linalg.norm(axis)
        forearm_delta = quaternion_multiply(pose_rot[:, forearm], quaternion_conjugate(rest_rot[forearm]))
        hand_delta = quaternion_multiply(pose_rot[:, hand], quaternion_conjugate(rest_rot[hand]))
        relative = quaternion_multiply(quaternion_conjugate(forearm_delta), hand_delta)
        angle = 2.0 * np.arctan2(relative[:, 1:] @ axis, relative[:, 0])
        angle = np.where(angle > np.pi, angle - 2 * np.pi, np.where(angle < -np.pi, angle + 2 * np.pi, angle))
        share = axis_angle_to_quaternion(fraction * angle[:, None] * axis)
        pose_rot[:, bone] = quaternion_multiply(quaternion_multiply(forearm_delta, share), rest_rot[bone])
        done.append(bone)
    return np.array(done, dtype=int)


_SPINE = (3, 6, 9, 12)  # spine1, spine2, spine3, neck


def _aim_spine(source: np.ndarray, global_rot: np.ndarray, rest: ArmatureRest, driven: np.ndarray) -> np.ndarray:
    """Spine bones of a chain of another length: turn each so it points along the posed SMPL-X spine.

    The blended rotation gives the twist; the posed SMPL-X spine polyline (spine1 -> spine2 -> spine3 -> neck,
    each segment turned by its joint's global rotation) is sampled at the bone's span, and the smallest
    rotation taking the blended direction onto that chord is put in front. With 1 or 5 spine bones the
    chest then ends where SMPL-X's does.
    """
    rest_points = REST_JOINTS[list(_SPINE)]
    rest_segments = np.diff(rest_points, axis=0)  # (3, 3)
    lengths = np.linalg.norm(rest_segments, axis=1)
    cumulative = np.r_[0.0, np.cumsum(lengths)] / lengths.sum()
    posed = np.einsum("tsij,sj->tsi", quaternion_to_matrix(global_rot[:, list(_SPINE[:3])]), rest_segments)
    posed_points = np.concatenate([np.zeros((len(global_rot), 1, 3)), np.cumsum(posed, axis=1)], axis=1)

    def point(points, fraction):
        k = int(np.clip(np.searchsorted(cumulative, fraction, side="right") - 1, 0, 2))
        w = (fraction - cumulative[k]) / (cumulative[k + 1] - cumulative[k])
        return points[..., k, :] + w * (points[..., k + 1, :] - points[..., k, :])

    rest_polyline = np.r_[np.zeros((1, 3)), np.cumsum(rest_segments, axis=0)]
    out = source.copy()
    for column, bone in enumerate(driven):
        span = rest.spine_span[bone]
        if span[1] <= span[0]:
            continue
        rest_chord = point(rest_polyline, span[1]) - point(rest_polyline, span[0])
        want = point(posed_points, span[1]) - point(posed_points, span[0])
        have = np.einsum("tij,j->ti", quaternion_to_matrix(source[:, column]), rest_chord)
        out[:, column] = quaternion_multiply(_swing_quaternions(have, want), source[:, column])
    return out


def _swing_quaternions(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 4) smallest rotations taking directions a onto b (never opposite here: small corrections)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    q = np.concatenate([1.0 + (a * b).sum(-1, keepdims=True), np.cross(a, b)], axis=-1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _frame(primary: np.ndarray, secondary: np.ndarray | None) -> np.ndarray | None:
    """Orthonormal 3x3 (columns) with the first axis along ``primary``, the second towards ``secondary``."""
    x = primary / np.linalg.norm(primary)
    if secondary is None:
        return None
    y = secondary - x * (secondary @ x)
    if np.linalg.norm(y) < 1e-9 * max(np.linalg.norm(secondary), 1e-12):
        return None
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def _swing(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The smallest rotation (3x3) turning direction ``source`` onto ``target``."""
    a = source / np.linalg.norm(source)
    b = target / np.linalg.norm(target)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(a @ b)
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        helper = np.eye(3)[np.argmin(np.abs(a))]  # opposite: a half turn about any axis normal to a
        axis = np.cross(a, helper)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    return axis_angle_to_matrix(axis / sin * np.arctan2(sin, cos))


def rest_corrections(rest: ArmatureRest, alignment: Alignment) -> np.ndarray:
    """Per bone, the armature-space rotation ``C_b`` from the rig's rest segment to the SMPL-X one (rest only).

    A rig in another rest pose (A-pose, bent elbows, fingers curled, a spine that curves differently)
    would otherwise copy the SMPL-X rotations onto its own rest and miss the SMPL-X directions. ``C_b``
    turns the rig's rest segment (this bone's head towards ``aim_bone``'s head: bone tails are not used,
    importers often point them all along one axis) onto the SMPL-X rest segment ``A aim_direction``; with a
    side direction (pelvis: right to left hip; hand: index to pinky) the twist is fixed too, else the
    smallest such rotation is used. Bones without an aim (end bones, jaw, eyes) take their nearest driven
    ancestor's correction, so they keep their rest pose relative to it.

    Returns:
        (B, 4) quaternions (w, x, y, z); identity for every bone of an SMPL-X rig.
    """
    count = len(rest.names)
    result = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (count, 1))
    if rest.aim_bone is None:
        return result
    heads = rest.rest_matrices[:, :3, 3]
    a = alignment.rotation
    for bone in range(count):
        if rest.joint_of_bone[bone] < 0:
            continue
        aim = rest.aim_bone[bone]
        rig = heads[aim] - heads[bone] if aim >= 0 else None
        if rig is None or np.linalg.norm(rig) < 1e-9:
            parent = rest.parents[bone]
            while parent >= 0 and rest.joint_of_bone[parent] < 0:
                parent = rest.parents[parent]
            if parent >= 0:
                result[bone] = result[parent]
            continue
        target = a @ rest.aim_direction[bone]
        rotation = None
        pair = rest.side_bones[bone] if rest.side_bones is not None else (-1, -1)
        if pair[0] >= 0 and pair[1] >= 0:
            rig_frame = _frame(rig, heads[pair[1]] - heads[pair[0]])
            smplx_frame = _frame(target, a @ rest.side_direction[bone])
            if rig_frame is not None and smplx_frame is not None:
                rotation = smplx_frame @ rig_frame.T
        if rotation is None:
            rotation = _swing(rig, target)
        result[bone] = matrix_to_quaternion(rotation)
    return result


def root_scale(rest: ArmatureRest, alignment: Alignment, rest_joints: np.ndarray = REST_JOINTS) -> float:
    """Root-motion scale: the rig's hip height over the SMPL-X one (pelvis above the ankles, along up).

    Falls back to the alignment's overall scale when the ankles are not mapped.
    """
    anchors = rest.anchor_of_bone if rest.anchor_of_bone is not None else rest.joint_of_bone
    bones = {j: b for b, j in enumerate(anchors) if j in (0, 7, 8)}
    if len(bones) < 3:
        return alignment.scale
    heads = rest.rest_matrices[:, :3, 3]
    up = alignment.rotation @ np.array([0.0, 1.0, 0.0])
    rig = float((heads[bones[0]] - 0.5 * (heads[bones[7]] + heads[bones[8]])) @ up)
    smplx = float(rest_joints[0, 1] - 0.5 * (rest_joints[7, 1] + rest_joints[8, 1]))
    if rig <= 1e-9 or smplx <= 1e-9:
        return alignment.scale
    return rig / smplx


def _orthonormal(matrices: np.ndarray) -> np.ndarray:
    """Nearest rotations (polar decomposition) of rest matrices, which Blender stores in float32."""
    u, _, vt = np.linalg.svd(matrices)
    return u @ vt


def solve_root_location(trans: np.ndarray, rest: ArmatureRest, alignment: Alignment,
                        scale: float | None = None) -> tuple[int, np.ndarray]:
    """Pass 5: the pelvis bone's pose ``location`` from the Motion's root translation.

    In SMPL-X the pelvis is at ``J_0 + trans_t``, i.e. it moves by ``trans_t`` from its rest position.
    In armature space that displacement is ``s A trans_t``. Blender puts a pose bone's head at
    ``head_without_location + R(chain) location`` (``chain`` as in pass 4), hence
    ``location = R(chain)^T s A trans_t``.

    Precondition: the pelvis bone's ancestors are not driven by the Motion (they stay at rest).

    Args:
        trans: (T, 3) root translation, metres, SMPL-X frame.
        rest: the armature rest pose.
        alignment: from ``align_rest_frames``.

    Returns:
        (index of the pelvis bone, (T, 3) float64 locations).

    Raises:
        RetargetError: when no bone is mapped to the pelvis, the pelvis is connected to its parent or a
            driven bone sits above it.
    """
    if 0 not in rest.joint_of_bone:
        raise RetargetError("No bone is mapped to the SMPL-X pelvis (joint 0); root motion needs one.")
    pelvis = rest.joint_of_bone.index(0)
    if rest.connected[pelvis]:
        raise RetargetError("is connected to its parent, so it cannot move; disconnect it in Edit Mode.",
                            bone=rest.names[pelvis])
    ancestor = rest.parents[pelvis]
    rest_rot = rest.rest_matrices[:, :3, :3]
    chain = rest_rot[pelvis]
    while ancestor >= 0:
        if rest.joint_of_bone[ancestor] >= 0:
            raise RetargetError("is a child of another SMPL-X bone; the pelvis must be the top SMPL-X bone.",
                                bone=rest.names[pelvis])
        ancestor = rest.parents[ancestor]
    scale = alignment.scale if scale is None else scale
    displacement = scale * (np.asarray(trans, dtype=np.float64) @ alignment.rotation.T)
    return pelvis, displacement @ chain  # row-vector form of chain^T d


def make_hemisphere_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Pass 6: flip signs so consecutive keys are in the same hemisphere (``q_t . q_{t-1} >= 0``).

    ``q`` and ``-q`` are the same rotation, but Blender interpolates F-curve components independently, so
    a sign flip between two keys would swing the bone the long way round. A running product of the
    per-step signs keeps every key next to its predecessor.

    Args:
        quaternions: (T, B, 4).

    Returns:
        (T, B, 4) with the same rotations, continuous signs.
    """
    q = np.array(quaternions, dtype=np.float64, copy=True)
    if len(q) < 2:
        return q
    step_sign = np.where(np.einsum("tbc,tbc->tb", q[1:], q[:-1]) < 0.0, -1.0, 1.0)
    cumulative = np.cumprod(step_sign, axis=0)
    q[1:] *= cumulative[..., None]
    return q


def fit_frame_count(poses: np.ndarray, trans: np.ndarray, frames: int,
                    tolerance: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pass 0: make a Motion exactly ``frames`` long when it differs by rounding (at most ``tolerance``).

    A sound strip's length is whole frames rounded up, the audio it plays is not; the last frame (past the
    end of the audio) holds the final pose, and an extra frame is dropped.

    Args:
        poses: (T, 165).
        trans: (T, 3).
        frames: the wanted frame count.
        tolerance: the largest difference accepted.

    Returns:
        (poses, trans) with ``frames`` rows.

    Raises:
        RetargetError: when the difference is larger than ``tolerance`` (a sync bug, never hidden).
    """
    count = len(poses)
    if abs(count - frames) > tolerance or frames < 1:
        raise RetargetError(f"The backend returned {count} frames where the sound strip has {frames}.")
    if count >= frames:
        return poses[:frames], trans[:frames]
    pad = frames - count
    return (np.concatenate([poses, np.repeat(poses[-1:], pad, 0)]),
            np.concatenate([trans, np.repeat(trans[-1:], pad, 0)]))


def retarget_motion(poses: np.ndarray, trans: np.ndarray, rest: ArmatureRest,
                    rest_joints: np.ndarray = REST_JOINTS) -> BoneTracks:
    """Run the whole pipeline: a Motion's arrays to keyframe values for one armature.

    Args:
        poses: (T, 165) axis-angle, SMPL-X order and frame.
        trans: (T, 3) root translation, metres.
        rest: the armature's rest pose and bone-to-joint map.
        rest_joints: (55, 3) SMPL-X rest joints the Motion was made for.

    Returns:
        The keyframe values (rotations of every driven bone, pelvis location).
    """
    local_smplx = local_rotations(poses)
    global_smplx = global_rotations(local_smplx)
    alignment = align_rest_frames(rest, rest_joints)
    local_pose = solve_pose_rotations(global_smplx, rest, alignment)
    # Any rig: the root moves by the hip-height ratio, so feet neither slide nor float (an SMPL-X rig: the
    # overall size ratio, as before).
    scale = root_scale(rest, alignment, rest_joints) if rest.aim_bone is not None else None
    pelvis, location = solve_root_location(trans, rest, alignment, scale)
    driven = [b for b, j in enumerate(rest.joint_of_bone)
              if j >= 0 or (rest.twist_share is not None and rest.twist_share[b][0] >= 0)]
    quaternions = local_pose[:, driven]
    quaternions /= np.linalg.norm(quaternions, axis=-1, keepdims=True)
    quaternions = make_hemisphere_continuous(quaternions)
    return BoneTracks(bone_names=tuple(rest.names[b] for b in driven), quaternions=quaternions,
                      root_bone=rest.names[pelvis], root_location=location, switches=rest.switches)


def smplx_joint_positions(poses: np.ndarray, trans: np.ndarray,
                          rest_joints: np.ndarray = REST_JOINTS) -> np.ndarray:
    """Forward kinematics of a Motion: world joint centres in the SMPL-X canonical frame.

    ``p_0 = J_0 + trans``, ``p_j = p_parent + G_parent (J_j - J_parent)``.

    Args:
        poses: (T, 165) axis-angle.
        trans: (T, 3) metres.
        rest_joints: (55, 3) rest joint centres, metres.

    Returns:
        (T, 55, 3) float64 metres.
    """
    rot = quaternion_to_matrix(global_rotations(local_rotations(poses)))
    trans = np.asarray(trans, dtype=np.float64)
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    positions = np.empty((len(trans), NUM_JOINTS, 3))
    for joint, parent in enumerate(PARENTS):
        if parent < 0:
            positions[:, joint] = rest_joints[joint] + trans
        else:
            offset = rest_joints[joint] - rest_joints[parent]
            positions[:, joint] = positions[:, parent] + rot[:, parent] @ offset
    return positions
