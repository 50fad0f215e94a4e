"""The retarget pipeline against an independent numpy model of Blender's pose evaluation.

Blender evaluates a pose bone as ``P_b = P_parent L_parent^-1 L_b Basis_b`` (4x4, armature space); the
world head of a bone is the translation of ``M_object P_b``. These tests build armatures with arbitrary
bone rest orientations, an extra bone above the pelvis and arbitrary object transforms, retarget random
motions onto them and check that every joint lands where SMPL-X forward kinematics puts it. The expected
answers come from ``smplx_oracle`` (mathutils), never from the rotation library under test.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from backend.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS
from blender_addon import retarget
from tests.blender.smplx_oracle import TO_BLENDER, smplx_joints


def _rotation_matrix(vector):
    """Rotation vector to matrix with mathutils (not the library under test)."""
    from mathutils import Quaternion, Vector

    angle = float(np.linalg.norm(vector))
    return np.array(Quaternion(Vector(vector / angle), angle).to_matrix())


def _quaternion_matrices(quaternions):
    """(T, 4) (w, x, y, z) to (T, 3, 3) with mathutils."""
    from mathutils import Quaternion

    return np.array([np.array(Quaternion(q).normalized().to_matrix()) for q in quaternions])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    return _rotation_matrix(rng.normal(size=3) * 2.0)


def _make_armature(rng, *, frame_rotation, scale=1.0, extra_root=True, random_rolls=True, offset=(0, 0, 0)):
    """An armature whose bone heads are ``scale * frame_rotation @ REST_JOINTS + offset``."""
    names, parents, mats, joints = [], [], [], []
    if extra_root:
        names.append("root")
        parents.append(-1)
        mats.append(np.eye(4))
        joints.append(-1)
    base = len(names)
    for j in range(NUM_JOINTS):
        m = np.eye(4)
        m[:3, :3] = _random_rotation(rng) if random_rolls else np.eye(3)
        m[:3, 3] = scale * frame_rotation @ REST_JOINTS[j] + np.asarray(offset)
        names.append(JOINT_NAMES[j])
        parents.append(PARENTS[j] + base if PARENTS[j] >= 0 else (0 if extra_root else -1))
        mats.append(m)
        joints.append(j)
    return retarget.ArmatureRest(names=tuple(names), parents=tuple(parents), rest_matrices=np.array(mats),
                                 joint_of_bone=tuple(joints), connected=(False,) * len(names))


def _blender_heads(rest, tracks, object_matrix):
    """World bone heads, (T, B, 3), evaluating poses the way Blender does."""
    frames = tracks.quaternions.shape[0]
    count = len(rest.names)
    basis = np.tile(np.eye(4), (frames, count, 1, 1))
    index = {n: i for i, n in enumerate(rest.names)}
    for k, name in enumerate(tracks.bone_names):
        basis[:, index[name], :3, :3] = _quaternion_matrices(tracks.quaternions[:, k])
    basis[:, index[tracks.root_bone], :3, 3] = tracks.root_location
    pose = np.empty_like(basis)
    for b in range(count):
        p = rest.parents[b]
        rel = rest.rest_matrices[b] if p < 0 else np.linalg.inv(rest.rest_matrices[p]) @ rest.rest_matrices[b]
        pose[:, b] = (rel if p < 0 else pose[:, p] @ rel) @ basis[:, b]
    world = object_matrix @ pose
    return world[..., :3, 3]


def _random_motion(rng, frames=12):
    poses = rng.normal(size=(frames, 165)) * 0.6
    trans = rng.normal(size=(frames, 3)) * 0.3 + np.array([0.0, 1.0, 0.0])
    return poses, trans


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fk_matches_for_any_bone_orientation_and_object_transform(seed):
    rng = np.random.default_rng(seed)
    rest = _make_armature(rng, frame_rotation=TO_BLENDER, offset=(0.0, 0.0, 1.3))
    object_matrix = np.eye(4)
    object_matrix[:3, :3] = _random_rotation(rng) * 1.7
    object_matrix[:3, 3] = rng.normal(size=3)
    poses, trans = _random_motion(rng)
    tracks = retarget.retarget_motion(poses, trans, rest)
    heads = _blender_heads(rest, tracks, object_matrix)[:, 1:]
    expected_arm = smplx_joints(poses, trans) @ TO_BLENDER.T + [0, 0, 1.3]
    expected = expected_arm @ object_matrix[:3, :3].T + object_matrix[:3, 3]
    assert np.abs(heads - expected).max() < 1e-5  # mathutils (the oracle) computes in float32


def test_y_up_armature_data_with_rotated_object_is_aligned():
    """SMPL-X add-on style: armature data in the SMPL-X frame itself, object turned +90 degrees about X."""
    rng = np.random.default_rng(5)
    rest = _make_armature(rng, frame_rotation=np.eye(3), random_rolls=True)
    alignment = retarget.align_rest_frames(rest)
    assert np.allclose(alignment.rotation, np.eye(3)) and abs(alignment.scale - 1) < 1e-9
    poses, trans = _random_motion(rng)
    tracks = retarget.retarget_motion(poses, trans, rest)
    object_matrix = np.eye(4)
    object_matrix[:3, :3] = TO_BLENDER
    heads = _blender_heads(rest, tracks, object_matrix)[:, 1:]
    expected = smplx_joints(poses, trans) @ TO_BLENDER.T
    assert np.abs(heads - expected).max() < 1e-5  # mathutils (the oracle) computes in float32


def test_other_proportions_keep_bone_directions_and_scale_root_motion():
    rng = np.random.default_rng(3)
    stretch = np.array([1.1, 0.9, 1.05])
    rest = _make_armature(rng, frame_rotation=TO_BLENDER, scale=2.0)
    # Distort proportions: every joint scaled per axis (a different body), then rebuild the rest.
    mats = rest.rest_matrices.copy()
    mats[:, :3, 3] *= stretch
    rest = retarget.ArmatureRest(rest.names, rest.parents, mats, rest.joint_of_bone, rest.connected)
    poses, trans = _random_motion(rng)
    tracks = retarget.retarget_motion(poses, trans, rest)
    heads = _blender_heads(rest, tracks, np.eye(4))
    joints = smplx_joints(poses, trans) @ TO_BLENDER.T
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        got = heads[:, j + 1] - heads[:, p + 1]
        want = joints[:, j] - joints[:, p]
        cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
        # A per-axis stretch of the rest skeleton bends rest directions a little; the pose follows.
        assert cos.min() > 0.97, JOINT_NAMES[j]
    alignment = retarget.align_rest_frames(rest)
    assert 2.0 * stretch.min() < alignment.scale < 2.0 * stretch.max()
    pelvis_motion = heads[:, 1] - heads[0, 1]
    want = alignment.scale * (trans - trans[0]) @ TO_BLENDER.T
    assert np.abs(pelvis_motion - want).max() < 1e-6


def test_quaternions_are_hemisphere_continuous_and_unit():
    rng = np.random.default_rng(4)
    rest = _make_armature(rng, frame_rotation=TO_BLENDER)
    # A joint spinning through 2 pi makes the naive w >= 0 quaternions jump sign.
    frames = 64
    poses = np.zeros((frames, 165))
    poses[:, 18 * 3 + 1] = np.linspace(0.0, 2 * np.pi * 0.99, frames)
    tracks = retarget.retarget_motion(poses, np.zeros((frames, 3)), rest)
    q = tracks.quaternions
    assert np.allclose(np.linalg.norm(q, axis=-1), 1.0)
    assert (np.einsum("tbc,tbc->tb", q[1:], q[:-1]) >= 0).all()


def test_unmapped_armature_is_rejected_with_a_clear_error():
    rest = retarget.ArmatureRest(("a", "b"), (-1, 0), np.tile(np.eye(4), (2, 1, 1)), (-1, -1), (False, False))
    with pytest.raises(retarget.RetargetError, match="not an SMPL-X armature"):
        retarget.retarget_motion(np.zeros((2, 165)), np.zeros((2, 3)), rest)


def test_pure_modules_import_without_bpy(repo_root):
    code = ("import sys; import blender_addon.retarget, blender_addon.timing, blender_addon.jobs; "
            "bad = [m for m in ('bpy', 'mathutils', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
