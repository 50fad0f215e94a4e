"""Forward kinematics against poses computed by hand and against scipy (an independent oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.motion.fk import chain_quaternions, chain_transforms, forward_kinematics
from backend.motion.rotations import axis_angle_to_quat
from backend.motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, REST_JOINTS

SHOULDER, ELBOW, WRIST = JOINT_INDEX["left_shoulder"], JOINT_INDEX["left_elbow"], JOINT_INDEX["left_wrist"]


def pose_with(**joints: tuple[float, float, float]) -> np.ndarray:
    poses = np.zeros((1, NUM_JOINTS, 3))
    for name, aa in joints.items():
        poses[0, JOINT_INDEX[name]] = aa
    return poses


def test_rest_pose_gives_rest_joints_plus_trans():
    trans = np.array([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]])
    pos, glob = forward_kinematics(np.zeros((2, 165)), trans)
    np.testing.assert_allclose(pos, REST_JOINTS[None] + trans[:, None], atol=1e-15)
    np.testing.assert_allclose(glob, np.broadcast_to(np.eye(3), (2, NUM_JOINTS, 3, 3)))


def test_left_shoulder_down_90_degrees():
    # Rotating the left shoulder by -90 deg about Z turns the arm from +X (left) to -Y (down):
    # Rz(-90) maps (x, y, z) to (y, -x, z).
    pos, glob = forward_kinematics(pose_with(left_shoulder=(0.0, 0.0, -np.pi / 2)))
    s, e, w = REST_JOINTS[SHOULDER], REST_JOINTS[ELBOW], REST_JOINTS[WRIST]
    d1, d2 = e - s, w - e
    elbow = s + np.array([d1[1], -d1[0], d1[2]])
    wrist = elbow + np.array([d2[1], -d2[0], d2[2]])
    np.testing.assert_allclose(pos[0, SHOULDER], s, atol=1e-15)
    np.testing.assert_allclose(pos[0, ELBOW], elbow, atol=1e-12)
    np.testing.assert_allclose(pos[0, WRIST], wrist, atol=1e-12)
    # concrete numbers: the elbow hangs ~0.254 m below the shoulder
    np.testing.assert_allclose(pos[0, ELBOW], [0.16408 + 0.01309 - 0.08524, 0.08524 - (0.41820 - 0.16408),
                                               -0.05821], atol=1e-9)
    # the rest of the body and the right arm do not move
    untouched = [j for j in range(NUM_JOINTS) if j not in (ELBOW, WRIST) and not 25 <= j < 40]
    np.testing.assert_allclose(pos[0, untouched], REST_JOINTS[untouched], atol=1e-15)
    np.testing.assert_allclose(glob[0, WRIST], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-15)


def test_shoulder_and_elbow_compose_in_parent_frames():
    # elbow +90 deg about Y in the (already rotated) upper-arm frame: Ry(90) maps (x, y, z) to (z, y, -x),
    # then the shoulder's Rz(-90) maps (a, b, c) to (b, -a, c): the forearm offset goes (x, y, z) -> (y, -z, -x).
    pos, _ = forward_kinematics(pose_with(left_shoulder=(0.0, 0.0, -np.pi / 2), left_elbow=(0.0, np.pi / 2, 0.0)))
    s, e, w = REST_JOINTS[SHOULDER], REST_JOINTS[ELBOW], REST_JOINTS[WRIST]
    d1, d2 = e - s, w - e
    elbow = s + np.array([d1[1], -d1[0], d1[2]])
    wrist = elbow + np.array([d2[1], -d2[2], -d2[0]])
    np.testing.assert_allclose(pos[0, WRIST], wrist, atol=1e-12)


def test_pelvis_rotation_turns_the_body_about_the_pelvis():
    trans = np.array([[1.0, 0.0, 2.0]])
    pos, _ = forward_kinematics(pose_with(pelvis=(0.0, np.pi, 0.0)), trans)
    rel = REST_JOINTS - REST_JOINTS[0]
    expected = REST_JOINTS[0] + trans[0] + rel * np.array([-1.0, 1.0, -1.0])  # Ry(180): (x, y, z) -> (-x, y, -z)
    np.testing.assert_allclose(pos[0], expected, atol=1e-12)


def test_bone_lengths_preserved_under_random_poses():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(20, 165))
    pos, glob = forward_kinematics(poses, rng.normal(size=(20, 3)))
    for j in range(1, NUM_JOINTS):
        rest = np.linalg.norm(REST_JOINTS[j] - REST_JOINTS[PARENTS[j]])
        np.testing.assert_allclose(np.linalg.norm(pos[:, j] - pos[:, PARENTS[j]], axis=-1), rest, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(glob), 1.0, atol=1e-12)


def test_input_shapes():
    poses = np.zeros((3, NUM_JOINTS, 3), np.float32)
    pos, glob = forward_kinematics(poses)
    assert pos.shape == (3, NUM_JOINTS, 3) and glob.shape == (3, NUM_JOINTS, 3, 3)
    single, _ = forward_kinematics(np.zeros(165))
    assert single.shape == (NUM_JOINTS, 3)
    with pytest.raises(ValueError, match=r"\(T, 165\)"):
        forward_kinematics(np.zeros((3, 52, 3)))


def test_chain_transforms_rejects_unsorted_parents():
    with pytest.raises(ValueError, match="precede"):
        chain_transforms(np.broadcast_to(np.eye(3), (1, 3, 3, 3)), np.zeros((1, 3)), np.zeros((3, 3)), [-1, 2, 0])


def _scipy_fk(poses: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, list]:
    """SMPL-X forward kinematics written with scipy's Rotation: positions (T, 55, 3) and global rotations."""
    from scipy.spatial.transform import Rotation

    frames = len(poses)
    aa = poses.reshape(frames, NUM_JOINTS, 3)
    glob: list = [None] * NUM_JOINTS
    pos = np.empty((frames, NUM_JOINTS, 3))
    for j, parent in enumerate(PARENTS):
        local = Rotation.from_rotvec(aa[:, j])
        if parent < 0:
            glob[j] = local
            pos[:, j] = REST_JOINTS[j] + trans
        else:
            glob[j] = glob[parent] * local
            pos[:, j] = pos[:, parent] + glob[parent].apply(REST_JOINTS[j] - REST_JOINTS[parent])
    return pos, glob


def test_forward_kinematics_and_quaternion_chain_match_scipy():
    rng = np.random.default_rng(21)
    poses = rng.normal(size=(7, 165)) * 0.8
    trans = rng.normal(size=(7, 3))
    want_pos, want_glob = _scipy_fk(poses, trans)
    pos, glob = forward_kinematics(poses, trans)
    np.testing.assert_allclose(pos, want_pos, atol=1e-12)
    quats = chain_quaternions(axis_angle_to_quat(poses.reshape(7, NUM_JOINTS, 3)), PARENTS)
    for j in range(NUM_JOINTS):
        np.testing.assert_allclose(glob[:, j], want_glob[j].as_matrix(), atol=1e-12)
        # q and -q are the same rotation
        xyzw = want_glob[j].as_quat()
        wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
        sign = np.sign(np.sum(wxyz * quats[:, j], axis=1, keepdims=True))
        np.testing.assert_allclose(quats[:, j], sign * wxyz, atol=1e-12)
    with pytest.raises(ValueError, match="precede"):
        chain_quaternions(np.tile([1.0, 0.0, 0.0, 0.0], (2, 1)), (-1, 1))
