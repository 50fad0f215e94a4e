"""The tests' own SMPL-X forward kinematics, written with Blender's ``mathutils`` (an independent oracle).

The add-on and the backend share one rotation / FK library (``backend/motion/rotations.py``, ``fk.py``,
``axes.py``); a test that computed its expected answer with that library would pass with a shared bug. This
module computes the SMPL-X joint positions with Blender's own quaternion and matrix types instead. It takes
only the skeleton's *facts* (parents, rest joint centres) from the project.
"""

from __future__ import annotations

import math

import bpy  # noqa: F401  (the bpy wheel makes mathutils importable once bpy is loaded)
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from backend.motion.skeleton import PARENTS, REST_JOINTS

# SMPL-X (Y up, +Z forward) to Blender (Z up, facing -Y): a +90 degree turn about X, built by mathutils.
TO_BLENDER = np.array(Matrix.Rotation(math.pi / 2.0, 3, "X"))


def _rotation(vector) -> Matrix:
    angle = math.sqrt(sum(float(c) * float(c) for c in vector))
    if angle < 1e-12:
        return Matrix.Identity(3)
    return Quaternion(Vector([float(c) / angle for c in vector]), angle).to_matrix()


def smplx_joints(poses, trans, frames=None, rest_joints=REST_JOINTS) -> np.ndarray:
    """World joint centres (F, 55, 3) in the SMPL-X canonical frame, metres.

    ``p_0 = J_0 + trans``, ``p_j = p_parent + G_parent (J_j - J_parent)``, ``G_j = G_parent R_j``.

    Args:
        poses: (T, 165) axis-angle.
        trans: (T, 3) metres.
        frames: the frame indices to compute (default: all).
        rest_joints: (55, 3) rest joint centres.
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(len(poses), -1, 3)
    trans = np.asarray(trans, dtype=np.float64)
    frames = range(len(poses)) if frames is None else list(frames)
    rest = [Vector(p) for p in np.asarray(rest_joints, dtype=np.float64)]
    out = np.empty((len(frames), len(PARENTS), 3))
    for row, t in enumerate(frames):
        glob: list[Matrix] = []
        pos: list[Vector] = []
        for j, parent in enumerate(PARENTS):
            local = _rotation(poses[t, j])
            if parent < 0:
                glob.append(local)
                pos.append(rest[j] + Vector(trans[t]))
            else:
                glob.append(glob[parent] @ local)
                pos.append(pos[parent] + glob[parent] @ (rest[j] - rest[parent]))
        out[row] = np.array([list(p) for p in pos])
    return out


def evaluated_heads(obj, bone_names, frames) -> dict[str, np.ndarray]:
    """bone -> (F, 3) world heads from Blender's own depsgraph evaluation at each frame."""
    out = {name: np.empty((len(frames), 3)) for name in bone_names}
    scene = bpy.context.scene
    for t, frame in enumerate(frames):
        scene.frame_set(frame)
        world = np.array(obj.matrix_world)
        for name in bone_names:
            out[name][t] = world[:3, :3] @ np.array(obj.pose.bones[name].head) + world[:3, 3]
    return out


def take_angles(obj, bone_map, poses, trans, smplx_to_armature, first_frame=1, step=1):
    """The measure the tests and the benchmark share: per segment, (F,) angles in degrees between the rig's
    world direction (Blender's evaluation of the keyed take) and SMPL-X's (this module's FK).

    Args:
        obj: the armature object, keyed from ``first_frame``.
        bone_map: which bones to compare (``rigmap.BoneMap``).
        poses, trans: the Motion that was keyed.
        smplx_to_armature: (3, 3) rotation of SMPL-X's canonical frame into armature space (the retarget's
            alignment, or ``TO_BLENDER`` for a rig built upright).
        first_frame: the scene frame of the Motion's first frame.
        step: compare every ``step``-th frame.

    Returns:
        (angles per segment label, evaluated heads, SMPL-X joints in the rig's world frame (F, 55, 3)).
    """
    from humanoid_rigs import segment_angles

    rows = list(range(0, len(poses), step))
    names = {bone for _, bone in bone_map.pairs()}
    heads = evaluated_heads(obj, names, [first_frame + r for r in rows])
    world = np.array(obj.matrix_world)[:3, :3]
    smplx = smplx_joints(poses, trans, rows) @ (world @ np.asarray(smplx_to_armature)).T
    return segment_angles(bone_map, heads, smplx), heads, smplx
