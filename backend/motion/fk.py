"""Forward kinematics for SMPL-X poses on a rest skeleton (no mesh, no shape blend shapes).

SMPL-X convention, as used by the body model's joint regression in the rest pose:

* every joint's rest frame is aligned with the world axes (the T-pose has identity rest rotations), so a
  joint's local rotation ``R_j`` (from its axis-angle) is expressed in its parent's frame;
* global rotation ``G_0 = R_0`` for the pelvis and ``G_j = G_parent(j) @ R_j`` for the others;
* pelvis world position ``p_0 = rest_pelvis + trans`` (the pelvis rotates about itself, not about the origin);
* child world position ``p_j = p_parent(j) + G_parent(j) @ (rest_j - rest_parent(j))``.

The same rule is the BVH rule (a joint's OFFSET is its rest offset from the parent, rotated by the parent's
global rotation), which is why ``bvh.py`` can write SMPL-X local rotations unchanged.

numpy-only, for Blender's Python too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .rotations import axis_angle_to_matrix, quat_multiply
from .skeleton import NUM_JOINTS, PARENTS, REST_JOINTS, rest_offsets


def chain_transforms(local_rotations: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray,
                     parents: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Generic forward kinematics over any tree whose parents come before their children.

    Args:
        local_rotations: (..., J, 3, 3) parent-relative rotations.
        root_positions: (..., 3) world position of joint 0 (roots other than joint 0, i.e. parent -1, use
            their own offset as world position).
        offsets: (J, 3) or (..., J, 3) rest offsets from each joint's parent (row 0 is ignored).
        parents: J parent indices, -1 for roots; ``parents[j] < j``.

    Returns:
        (positions (..., J, 3), global rotations (..., J, 3, 3)), float64.
    """
    rot = np.asarray(local_rotations, dtype=np.float64)
    num = rot.shape[-3]
    if len(parents) != num:
        raise ValueError(f"{len(parents)} parents for {num} joints")
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), rot.shape[:-3] + (num, 3))
    root = np.asarray(root_positions, dtype=np.float64)
    glob = np.empty_like(rot)
    pos = np.empty(rot.shape[:-1], dtype=np.float64)
    for j, parent in enumerate(parents):
        if parent < 0:
            glob[..., j, :, :] = rot[..., j, :, :]
            pos[..., j, :] = root if j == 0 else offsets[..., j, :]
            continue
        if parent >= j:
            raise ValueError(f"joint {j} has parent {parent}; parents must precede their children")
        glob[..., j, :, :] = glob[..., parent, :, :] @ rot[..., j, :, :]
        pos[..., j, :] = pos[..., parent, :] + np.einsum("...ab,...b->...a", glob[..., parent, :, :],
                                                         offsets[..., j, :])
    return pos, glob


def chain_quaternions(local_quats: np.ndarray, parents: Sequence[int] = PARENTS) -> np.ndarray:
    """Forward kinematics of orientations only, in quaternions: ``G_j = G_parent(j) R_j``, ``G_root = R_root``.

    Elementwise over frames (fast for long takes; the retarget uses it).

    Args:
        local_quats: (..., J, 4) parent-relative rotations (w, x, y, z).
        parents: J parent indices, -1 for roots; ``parents[j] < j`` (default: SMPL-X's).

    Returns:
        (..., J, 4) float64 global rotations.
    """
    local = np.asarray(local_quats, dtype=np.float64)
    if len(parents) != local.shape[-2]:
        raise ValueError(f"{len(parents)} parents for {local.shape[-2]} joints")
    out = np.empty_like(local)
    for j, parent in enumerate(parents):
        if parent >= j:
            raise ValueError(f"joint {j} has parent {parent}; parents must precede their children")
        out[..., j, :] = local[..., j, :] if parent < 0 else quat_multiply(out[..., parent, :], local[..., j, :])
    return out


def forward_kinematics(poses: np.ndarray, trans: np.ndarray | None = None,
                       rest_joints: np.ndarray = REST_JOINTS) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions and rotations of SMPL-X poses.

    Args:
        poses: (T, 165) or (T, 55, 3) per-joint parent-relative axis-angle, radians (a single frame (165,) or
            (55, 3) works too and returns without the T axis).
        trans: (T, 3) root translation in metres; None = zeros.
        rest_joints: (55, 3) world-space rest joint centres in metres (default: the built-in neutral body).

    Returns:
        (joint world positions (T, 55, 3) metres, global rotation matrices (T, 55, 3, 3)), float64.
    """
    aa = np.asarray(poses, dtype=np.float64)
    single = aa.shape in ((NUM_JOINTS * 3,), (NUM_JOINTS, 3))
    if single:
        aa = aa.reshape(1, NUM_JOINTS, 3)
    if aa.ndim == 2 and aa.shape[1] == NUM_JOINTS * 3:
        aa = aa.reshape(len(aa), NUM_JOINTS, 3)
    if aa.ndim != 3 or aa.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"poses must be (T, 165) or (T, 55, 3), got {np.shape(poses)}")
    frames = aa.shape[0]
    if trans is None:
        trans = np.zeros((frames, 3))
    trans = np.asarray(trans, dtype=np.float64).reshape(frames, 3)
    rest = np.asarray(rest_joints, dtype=np.float64)
    if rest.shape != (NUM_JOINTS, 3):
        raise ValueError(f"rest_joints must be (55, 3), got {rest.shape}")
    pos, glob = chain_transforms(axis_angle_to_matrix(aa), rest[0] + trans, rest_offsets(rest), PARENTS)
    if single:
        return pos[0], glob[0]
    return pos, glob
