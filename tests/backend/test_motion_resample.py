"""Frame counts and slerp resampling."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from backend.motion.motion import Motion
from backend.motion.resample import num_frames_for, resample_motion
from backend.motion.rotations import axis_angle_to_matrix, axis_angle_to_quat, quat_to_axis_angle
from backend.motion.skeleton import JOINT_INDEX, NUM_JOINTS

FPS = (23.976, 25.0, 29.97, 30.0, 60.0)
DURATIONS = (0.0, 0.04, 0.5, 1.0, 2.5, 3.3, 7.77, 10.0, 60.0, 123.456, 600.0)


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("duration", DURATIONS)
def test_num_frames_is_round_half_up_of_the_exact_product(duration, fps):
    exact = Fraction(str(duration)) * Fraction(str(fps))  # the decimal values as written
    expected = int(exact + Fraction(1, 2))  # floor(x + 1/2): round half up
    assert num_frames_for(duration, fps) == expected


@pytest.mark.parametrize("duration,fps,frames", [
    (1.0, 23.976, 24), (10.0, 23.976, 240), (60.0, 23.976, 1439), (0.5, 29.97, 15), (2.0, 29.97, 60),
    (50.0, 29.97, 1499),  # 1498.5 exactly: half up
    (0.58, 25.0, 15),  # 14.5 exactly although 0.58 * 25 == 14.499999999999998 in binary
    (0.1, 25.0, 3), (2.5, 30.0, 75), (1 / 3, 30.0, 10), (0.0, 60.0, 0), (10.0, 24000 / 1001, 240),
])
def test_num_frames_known_values(duration, fps, frames):
    assert num_frames_for(duration, fps) == frames


def test_num_frames_rejects_bad_input():
    with pytest.raises(ValueError, match="fps"):
        num_frames_for(1.0, 0.0)
    with pytest.raises(ValueError, match="duration"):
        num_frames_for(-1.0, 30.0)


def rotating_joint_motion(angles_deg: list[float], fps: float, axis=(0.0, 0.0, 1.0)) -> Motion:
    poses = np.zeros((len(angles_deg), NUM_JOINTS, 3))
    poses[:, JOINT_INDEX["left_elbow"]] = np.deg2rad(np.asarray(angles_deg))[:, None] * np.asarray(axis)
    trans = np.stack([np.arange(len(angles_deg), dtype=float), np.zeros(len(angles_deg)),
                      np.zeros(len(angles_deg))], 1)
    return Motion(poses=poses, trans=trans, fps=fps)


@pytest.mark.parametrize("src_fps", [20.0, 30.0])
@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("duration", [0.5, 3.3, 7.77])
def test_resample_gives_exact_frame_count(src_fps, fps, duration):
    frames = num_frames_for(duration, src_fps)
    rng = np.random.default_rng(0)
    src = Motion(poses=rng.normal(size=(frames, 165)), trans=rng.normal(size=(frames, 3)), fps=src_fps)
    out = resample_motion(src, fps)
    assert out.num_frames == num_frames_for(src.duration_s, fps)
    assert out.fps == fps
    assert resample_motion(src, fps, num_frames=17).num_frames == 17


def test_slerp_midpoints_match_the_known_rotation():
    # 0 -> 90 deg about Z at 10 fps; at 20 fps the odd frames are halfway: 45 deg (lerp of axis-angle would give
    # the same here, so the next test checks the hemisphere case).
    src = rotating_joint_motion([0.0, 90.0, 170.0], fps=10.0)
    out = resample_motion(src, 20.0, num_frames=5)
    angles = np.rad2deg(out.joint_axis_angles()[:, JOINT_INDEX["left_elbow"], 2])
    np.testing.assert_allclose(angles, [0.0, 45.0, 90.0, 130.0, 170.0], atol=1e-4)
    np.testing.assert_allclose(out.trans[:, 0], [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-6)


def test_slerp_takes_the_short_way_across_pi():
    # 170 deg then 190 deg (= -170 deg): the midpoint is 180 deg, not 0 deg as axis-angle lerp would give
    src = rotating_joint_motion([170.0, 190.0], fps=10.0)
    mid = resample_motion(src, 20.0, num_frames=3).joint_axis_angles()[1, JOINT_INDEX["left_elbow"]]
    np.testing.assert_allclose(axis_angle_to_matrix(mid.astype(np.float64)),
                               axis_angle_to_matrix(np.array([0.0, 0.0, np.pi])), atol=1e-6)


def test_non_uniform_slerp_between_arbitrary_rotations():
    rng = np.random.default_rng(1)
    src = Motion(poses=rng.normal(size=(4, 165)), trans=np.zeros((4, 3)), fps=10.0)
    out = resample_motion(src, 30.0, num_frames=10)
    q_src = axis_angle_to_quat(src.joint_axis_angles().astype(np.float64))
    q_out = axis_angle_to_quat(out.joint_axis_angles().astype(np.float64))
    np.testing.assert_allclose(np.linalg.norm(q_out, axis=-1), 1.0, atol=1e-6)
    # frame 1 of the output is 1/3 of the way from source frame 0 to 1: its relative rotation from frame 0 is 1/3
    # of the full relative rotation (constant angular speed), about the same axis
    rel_full = quat_to_axis_angle(_qmul(_qconj(q_src[0]), q_src[1]))
    rel_third = quat_to_axis_angle(_qmul(_qconj(q_src[0]), q_out[1]))
    np.testing.assert_allclose(rel_third, rel_full / 3.0, atol=1e-5)
    # source frames are hit exactly at multiples of 3
    for k in (0, 3, 6, 9):
        np.testing.assert_allclose(np.abs(np.sum(q_out[k] * q_src[k // 3], axis=-1)), 1.0, atol=1e-6)


def _qmul(a, b):
    from backend.motion.rotations import quat_multiply
    return quat_multiply(a, b)


def _qconj(a):
    from backend.motion.rotations import quat_conjugate
    return quat_conjugate(a)


def test_same_rate_is_identity_and_clamps_past_the_end():
    rng = np.random.default_rng(2)
    src = Motion(poses=rng.uniform(-1, 1, size=(6, 165)) * 0.5, trans=rng.normal(size=(6, 3)), fps=30.0,
                 betas=np.arange(10), gender="female")
    same = resample_motion(src, 30.0)
    np.testing.assert_allclose(same.poses, src.poses, atol=1e-6)
    np.testing.assert_allclose(same.trans, src.trans, atol=1e-7)
    assert same.gender == "female" and np.array_equal(same.betas, src.betas)
    longer = resample_motion(src, 30.0, num_frames=9)
    np.testing.assert_allclose(longer.poses[6:], np.repeat(src.poses[-1:], 3, 0), atol=1e-6)
    single = Motion(poses=src.poses[:1], trans=src.trans[:1], fps=30.0)
    assert resample_motion(single, 60.0, num_frames=4).num_frames == 4
    with pytest.raises(ValueError, match="num_frames"):
        resample_motion(src, 30.0, num_frames=0)
