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
Rotations travel as unit quaternions (w, x, y, z) so every per-frame step is elementwise numpy. The rotation,
forward-kinematics and swing-twist maths are the shared library's (``backend/motion/rotations.py``, ``fk.py``,
bundled with the add-on), the same code the backend uses.
The only bpy step, writing F-curves, lives in ``keyframes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# One rotation / FK library for the backend and the add-on (numpy only; build_addon.py bundles backend/).
from .backend.motion.fk import chain_quaternions
from .backend.motion.rotations import (
    axis_angle_to_quat,
    matrix_to_quat,
    quat_between,
    quat_conjugate,
    quat_continuity,
    quat_multiply,
    quat_to_matrix,
    slerp,
    twist_angle,
)
from .backend.motion.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS


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
    # Twist bones (and main bones with inline twist bones): (main, end, fraction, own), see ``_share_twist``.
    twist_share: tuple[tuple[int, int, float, bool], ...] | None = None


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
# The passes


def local_rotations(poses: np.ndarray) -> np.ndarray:
    """Pass 1: the Motion's axis-angle poses as quaternions.

    Precondition: ``poses`` is (T, 165) or (T, 55, 3), SMPL-X joint order.

    Returns:
        (T, 55, 4) float64 parent-relative rotations ``R_j`` (w, x, y, z).
    """
    poses = np.asarray(poses, dtype=np.float64)
    return axis_angle_to_quat(poses.reshape(len(poses), NUM_JOINTS, 3))


def global_rotations(local: np.ndarray) -> np.ndarray:
    """Pass 2: forward kinematics of orientations, ``G_j = G_parent(j) R_j``, ``G_0 = R_0``.

    Precondition: ``local`` is (T, 55, 4); SMPL-X parents precede children (they do).

    Returns:
        (T, 55, 4) float64 global rotations in the SMPL-X canonical frame.
    """
    return chain_quaternions(local, PARENTS)


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
    a = matrix_to_quat(alignment.rotation)
    rest_rot = matrix_to_quat(_orthonormal(rest.rest_matrices[:, :3, :3]))
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
    global_in_armature = quat_multiply(quat_multiply(a, source), quat_conjugate(a))
    correction = rest_corrections(rest, alignment)
    pose_rot = np.empty((frames, count, 4))
    pose_rot[:, driven] = quat_multiply(global_in_armature, quat_multiply(correction[driven],
                                                                                      rest_rot[driven]))
    # 2. Bones the Motion does not drive keep Basis = I: their pose is their parent's carried by the rest offset.
    #    R(P_parent) R(L_parent)^T R(L_b) is "where the bone points when its own Basis is identity".
    parents = np.array(rest.parents)
    relative = rest_rot.copy()
    has_parent = np.flatnonzero(parents >= 0)
    relative[has_parent] = quat_multiply(quat_conjugate(rest_rot[parents[has_parent]]),
                                               rest_rot[has_parent])
    _carry_undriven(pose_rot, relative, parents, joints < 0)
    # 2b. Twist bones take their share of the segment's twist (mesh deformation), and a main bone with inline
    #     twist bones below it gives its own twist to them; then the bones that follow are carried again.
    #     A driven bone below an inline twist bone (forearm, hand, shin) is solved below it in step 3.
    twisted = _share_twist(pose_rot, rest_rot, rest)
    if len(twisted):
        free = joints < 0
        free[twisted] = False
        _carry_undriven(pose_rot, relative, parents, free)
    driven = np.union1d(driven, twisted).astype(int)
    # 3. Q_b = chain^-1 target for the driven bones, with chain = R(P_parent) R(L_parent)^T R(L_b).
    local = np.empty((frames, count, 4))
    local[:] = np.array([1.0, 0.0, 0.0, 0.0])
    with_parent = driven[parents[driven] >= 0]
    roots = driven[parents[driven] < 0]
    chain = quat_multiply(pose_rot[:, parents[with_parent]], relative[with_parent])
    local[:, with_parent] = quat_multiply(quat_conjugate(chain), pose_rot[:, with_parent])
    local[:, roots] = quat_multiply(quat_conjugate(rest_rot[roots]), pose_rot[:, roots])
    return local


def _carry_undriven(pose_rot: np.ndarray, relative: np.ndarray, parents: np.ndarray, free: np.ndarray) -> None:
    """Bones marked ``free`` keep Basis = I: their pose is their parent's carried by the rest offset (in place).

    ``pose_rot[parent] relative[b]`` (``relative = R(L_parent)^T R(L_b)``) is where the bone points when its own
    Basis is the identity. Parents come before children, so one pass suffices.
    """
    for bone in np.flatnonzero(free):
        parent = parents[bone]
        pose_rot[:, bone] = relative[bone] if parent < 0 else quat_multiply(pose_rot[:, parent], relative[bone])


def _share_twist(pose_rot: np.ndarray, rest_rot: np.ndarray, rest: ArmatureRest) -> np.ndarray:
    """Give twist bones their share of their segment's twist (``pose_rot`` in place); returns their indices.

    Each entry of ``rest.twist_share`` is ``(main, end, fraction, own)`` for a segment running from the main
    bone's head to the ``end`` bone's head, whose rest direction ``u`` is the twist axis. Deltas are
    armature-space changes from rest, ``D_b = R(P_b) R(L_b)^T``. The twist ``tau`` is the swing-twist
    decomposition about ``u`` of

    * ``own`` (upper arm, thigh): the main bone's rotation relative to its parent, ``D_parent^T D_main``; the
      shoulder end does not twist, the elbow end has all of it, so a bone at ``fraction`` along the segment
      gets ``D_main Twist(u, -(1 - fraction) tau)``. A main bone with inline twist bones below it gets
      fraction 0 (it swings, its twist bones twist);
    * not ``own`` (forearm): the end bone's (hand's) rotation relative to the main bone, ``D_main^T D_end``;
      a bone at ``fraction`` gets ``D_main Twist(u, fraction tau)``.

    The twist angles are all taken from the solved poses before any bone is changed.
    """
    if rest.twist_share is None:
        return np.zeros(0, dtype=int)
    heads = rest.rest_matrices[:, :3, 3]
    identity = np.array([1.0, 0.0, 0.0, 0.0])

    def delta(bone: int) -> np.ndarray:
        if bone < 0:
            return np.broadcast_to(identity, pose_rot[:, 0].shape)
        return quat_multiply(pose_rot[:, bone], quat_conjugate(rest_rot[bone]))

    entries = [(bone, int(main), int(end), float(fraction), bool(own))
               for bone, (main, end, fraction, own) in enumerate(rest.twist_share) if main >= 0 and end >= 0]
    segments: dict[tuple[int, int, bool], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for _, main, end, _, own in entries:
        key = (main, end, own)
        axis = heads[end] - heads[main]
        if key in segments or np.linalg.norm(axis) < 1e-9:
            continue
        axis = axis / np.linalg.norm(axis)
        main_delta = delta(main)
        relative = (quat_multiply(quat_conjugate(delta(rest.parents[main])), main_delta) if own
                    else quat_multiply(quat_conjugate(main_delta), delta(end)))
        segments[key] = (axis, main_delta, twist_angle(relative, axis))
    done = []
    for bone, main, end, fraction, own in entries:
        if (main, end, own) not in segments:
            continue
        axis, main_delta, tau = segments[(main, end, own)]
        angle = -(1.0 - fraction) * tau if own else fraction * tau
        share = axis_angle_to_quat(angle[:, None] * axis)
        pose_rot[:, bone] = quat_multiply(quat_multiply(main_delta, share), rest_rot[bone])
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
    posed = np.einsum("tsij,sj->tsi", quat_to_matrix(global_rot[:, list(_SPINE[:3])]), rest_segments)
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
        have = np.einsum("tij,j->ti", quat_to_matrix(source[:, column]), rest_chord)
        out[:, column] = quat_multiply(quat_between(have, want), source[:, column])
    return out


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
            rotation = quat_to_matrix(quat_between(rig, target))
        result[bone] = matrix_to_quat(rotation)
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
    a sign flip between two keys would swing the bone the long way round.

    Args:
        quaternions: (T, B, 4).

    Returns:
        (T, B, 4) float64 with the same rotations, continuous signs.
    """
    return quat_continuity(np.asarray(quaternions, dtype=np.float64), axis=0)


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

