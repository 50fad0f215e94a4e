"""Rotation conversions: round trips (random, near 0, near pi), agreement with scipy, 6D layouts, Euler orders."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from backend.motion import rotations as rot

ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def random_axis_angle(rng: np.random.Generator, n: int, max_angle: float = np.pi) -> np.ndarray:
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0.0, max_angle, size=(n, 1))


def same_rotation(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def test_axis_angle_to_matrix_matches_scipy_and_is_orthonormal():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(500, 3)) * 2.0  # angles up to ~2pi and beyond
    m = rot.axis_angle_to_matrix(aa)
    same_rotation(m, Rotation.from_rotvec(aa).as_matrix(), 1e-12)
    same_rotation(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), 1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_any_leading_shape_and_dtype():
    rng = np.random.default_rng(1)
    aa = rng.normal(size=(2, 3, 4, 3)).astype(np.float32)
    m = rot.axis_angle_to_matrix(aa)
    assert m.shape == (2, 3, 4, 3, 3) and m.dtype == np.float32
    q = rot.axis_angle_to_quat(aa)
    assert q.shape == (2, 3, 4, 4) and q.dtype == np.float32
    assert rot.matrix_to_rot6d_interleaved(m).shape == (2, 3, 4, 6)
    assert rot.matrix_to_euler(m.astype(np.float64), "ZXY").dtype == np.float64
    single = rot.axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    same_rotation(single, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], 1e-15)


def test_round_trips_random():
    rng = np.random.default_rng(2)
    aa = random_axis_angle(rng, 2000, np.pi - 1e-6)
    m = rot.axis_angle_to_matrix(aa)
    q = rot.axis_angle_to_quat(aa)
    np.testing.assert_allclose(rot.matrix_to_axis_angle(m), aa, atol=1e-10)
    np.testing.assert_allclose(rot.quat_to_axis_angle(q), aa, atol=1e-12)
    same_rotation(rot.quat_to_matrix(q), m, 1e-12)
    qm = rot.matrix_to_quat(m)
    np.testing.assert_allclose(np.abs(np.sum(qm * q, axis=-1)), 1.0, atol=1e-12)  # same up to sign
    same_rotation(rot.rot6d_interleaved_to_matrix(rot.matrix_to_rot6d_interleaved(m)), m, 1e-12)
    same_rotation(rot.rot6d_columns_to_matrix(rot.matrix_to_rot6d_columns(m)), m, 1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-9, 1e-6, 1e-5, 9.9e-5, 1e-4, 1.01e-4, 1e-3])
def test_near_zero(angle):
    rng = np.random.default_rng(3)
    axis = rng.normal(size=(50, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    aa = axis * angle
    m = rot.axis_angle_to_matrix(aa)
    same_rotation(m, Rotation.from_rotvec(aa).as_matrix(), 1e-15)
    q = rot.axis_angle_to_quat(aa)
    np.testing.assert_allclose(q, Rotation.from_rotvec(aa).as_quat(scalar_first=True), atol=1e-16, rtol=0)
    # relative accuracy of the tiny rotation vector survives the round trips
    np.testing.assert_allclose(rot.quat_to_axis_angle(q), aa, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(rot.matrix_to_axis_angle(m), aa, rtol=1e-6, atol=1e-15)
    assert np.all(np.isfinite(rot.matrix_to_axis_angle(m)))


@pytest.mark.parametrize("delta", [0.0, 1e-12, 1e-8, 1e-5, 1e-3])
def test_near_pi(delta):
    rng = np.random.default_rng(4)
    axis = rng.normal(size=(200, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    aa = axis * (np.pi - delta)
    m = rot.axis_angle_to_matrix(aa)
    back = rot.matrix_to_axis_angle(m)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), np.pi - delta, atol=1e-7)
    same_rotation(rot.axis_angle_to_matrix(back), m, 1e-12)
    if delta >= 1e-5:  # away from exactly pi the axis sign is determined
        np.testing.assert_allclose(back, aa, atol=1e-7)
    q = rot.matrix_to_quat(m)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-14)
    same_rotation(rot.quat_to_matrix(q), m, 1e-12)


def test_axis_aligned_half_turns():
    for axis in np.eye(3):
        m = rot.axis_angle_to_matrix(axis * np.pi)
        back = rot.matrix_to_axis_angle(m)
        np.testing.assert_allclose(np.abs(back), axis * np.pi, atol=1e-12)
        q = rot.matrix_to_quat(m)
        np.testing.assert_allclose(np.abs(q), np.concatenate([[0.0], axis]), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, (3,), elements=st.floats(-10.0, 10.0, allow_nan=False)))
def test_hypothesis_matrix_axis_angle_matrix(aa):
    m = rot.axis_angle_to_matrix(aa)
    back = rot.matrix_to_axis_angle(m)
    assert np.linalg.norm(back) <= np.pi + 1e-12
    same_rotation(rot.axis_angle_to_matrix(back), m, 1e-11)
    same_rotation(rot.quat_to_matrix(rot.matrix_to_quat(m)), m, 1e-11)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, (3,), elements=st.floats(-10.0, 10.0, allow_nan=False)),
       st.sampled_from(ORDERS))
def test_hypothesis_euler_round_trip(aa, order):
    m = rot.axis_angle_to_matrix(aa)
    angles = rot.matrix_to_euler(m, order, degrees=True)
    assert abs(angles[1]) <= 90.0 + 1e-9
    same_rotation(rot.euler_to_matrix(angles, order, degrees=True), m, 1e-10)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matches_scipy_intrinsic(order):
    rng = np.random.default_rng(5)
    angles = np.stack([rng.uniform(-180, 180, 300), rng.uniform(-89, 89, 300), rng.uniform(-180, 180, 300)], 1)
    m = rot.euler_to_matrix(angles, order, degrees=True)
    same_rotation(m, Rotation.from_euler(order, angles, degrees=True).as_matrix(), 1e-12)  # upper case = intrinsic
    np.testing.assert_allclose(rot.matrix_to_euler(m, order, degrees=True), angles, atol=1e-9)
    # composition in channel order: R = R_first @ R_second @ R_third
    first = rot.euler_to_matrix(np.stack([angles[:, 0], 0 * angles[:, 0], 0 * angles[:, 0]], 1), order, True)
    rest = rot.euler_to_matrix(np.stack([0 * angles[:, 0], angles[:, 1], angles[:, 2]], 1), order, True)
    same_rotation(first @ rest, m, 1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_gimbal_lock(order):
    for middle in (90.0, -90.0):
        angles = np.array([30.0, middle, -50.0])
        m = rot.euler_to_matrix(angles, order, degrees=True)
        back = rot.matrix_to_euler(m, order, degrees=True)
        assert np.all(np.isfinite(back))
        np.testing.assert_allclose(back[1], middle, atol=1e-6)
        same_rotation(rot.euler_to_matrix(back, order, degrees=True), m, 1e-9)


def test_euler_rejects_bad_order():
    with pytest.raises(ValueError, match="permutation"):
        rot.euler_to_matrix(np.zeros(3), "ZXZ")


def test_rot6d_layouts():
    m = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(rot.matrix_to_rot6d_interleaved(m), [0, 1, 3, 4, 6, 7])
    np.testing.assert_array_equal(rot.matrix_to_rot6d_columns(m), [0, 3, 6, 1, 4, 7])
    # Gram-Schmidt: a scaled, skewed second column still decodes to the rotation
    rng = np.random.default_rng(6)
    r = rot.axis_angle_to_matrix(random_axis_angle(rng, 100))
    c0, c1 = r[..., 0] * 3.0, r[..., 1] * 0.5 + r[..., 0] * 0.7
    inter = np.stack([c0, c1], -1).reshape(100, 6)
    same_rotation(rot.rot6d_interleaved_to_matrix(inter), r, 1e-12)
    same_rotation(rot.rot6d_columns_to_matrix(np.concatenate([c0, c1], -1)), r, 1e-12)
    # the two layouts are different: decoding one as the other is wrong in general
    assert np.abs(rot.rot6d_columns_to_matrix(inter) - r).max() > 0.1


def test_rot6d_interleaved_reproduces_expgest_hybrid_decode(fixtures_dir):
    torch = pytest.importorskip("torch")
    data = torch.load(fixtures_dir / "decode.pt", weights_only=True)
    feats = data["hyb_feats"].numpy()
    expected = data["hyb_poses_nosg"].numpy()  # official rot6d_to_rotmat + batch_rot2aa
    got = rot.matrix_to_axis_angle(rot.rot6d_interleaved_to_matrix(feats[:, :330].reshape(-1, 55, 6)))
    same_rotation(rot.axis_angle_to_matrix(got), rot.axis_angle_to_matrix(expected), 1e-9)
    np.testing.assert_allclose(got, data["hyb_source_axis_angle"].numpy(), atol=1e-9)


def test_quaternion_algebra():
    rng = np.random.default_rng(7)
    a = rot.axis_angle_to_quat(random_axis_angle(rng, 100))
    b = rot.axis_angle_to_quat(random_axis_angle(rng, 100))
    same_rotation(rot.quat_to_matrix(rot.quat_multiply(a, b)), rot.quat_to_matrix(a) @ rot.quat_to_matrix(b), 1e-12)
    ident = rot.quat_multiply(a, rot.quat_conjugate(a))
    np.testing.assert_allclose(ident, np.tile([1.0, 0, 0, 0], (100, 1)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(rot.quat_normalize(a * 3.7), axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(rot.quat_normalize(np.zeros(4)), [1.0, 0, 0, 0])


def test_quat_apply_matches_scipy_and_normalises():
    rng = np.random.default_rng(11)
    q = rng.normal(size=(200, 4)) * rng.uniform(0.5, 2.0, size=(200, 1))  # not unit length
    v = rng.normal(size=(200, 3))
    want = Rotation.from_quat(q, scalar_first=True).apply(v)  # scipy normalises too
    np.testing.assert_allclose(rot.quat_apply(q, v), want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(rot.quat_apply(q, v), (rot.quat_to_matrix(q) @ v[..., None])[..., 0], atol=1e-12)
    # broadcasting one quaternion over many vectors; float32 in, float32 out
    out = rot.quat_apply(q[0].astype(np.float32), v.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, Rotation.from_quat(q[0], scalar_first=True).apply(v), atol=1e-5)


def test_quat_continuity_flips_to_one_hemisphere():
    rng = np.random.default_rng(8)
    angles = np.linspace(0, 4 * np.pi, 200)  # two full turns about an axis: q changes sign every turn
    q = rot.axis_angle_to_quat(np.stack([0 * angles, angles, 0 * angles], 1))
    q[rng.random(200) < 0.3] *= -1.0  # random sign noise
    fixed = rot.quat_continuity(q[:, None, :], axis=0)[:, 0]
    assert np.all(np.sum(fixed[1:] * fixed[:-1], axis=1) > 0)
    np.testing.assert_allclose(np.abs(fixed), np.abs(q))  # only signs changed
    same_rotation(rot.quat_to_matrix(fixed), rot.quat_to_matrix(q), 1e-12)


def test_slerp_constant_speed_and_short_arc():
    q0 = rot.axis_angle_to_quat(np.array([0.0, 0.0, 0.0]))
    q1 = rot.axis_angle_to_quat(np.array([0.0, 0.0, np.pi / 2]))
    t = np.linspace(0, 1, 11)
    out = rot.slerp(q0, q1, t)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(rot.quat_to_axis_angle(out)[:, 2], t * np.pi / 2, atol=1e-12)
    # the far-hemisphere representative of q1 gives the same (short) path
    np.testing.assert_allclose(np.abs(rot.slerp(q0, -q1, t)), np.abs(out), atol=1e-14)
    # identical endpoints (near-parallel branch)
    np.testing.assert_allclose(rot.slerp(q1, q1, 0.3), q1, atol=1e-15)


def _scipy_quat(q_wxyz: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.asarray(q_wxyz)[..., [1, 2, 3, 0]])


def test_quat_between_matches_scipy_align_vectors():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    q = rot.quat_between(a, b)
    moved = _scipy_quat(q).apply(a / np.linalg.norm(a, axis=1, keepdims=True))
    np.testing.assert_allclose(moved, b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-12)
    # the smallest such rotation: its angle is the angle between the directions
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(_scipy_quat(q).magnitude(), np.arccos(np.clip(cos, -1, 1)), atol=1e-7)
    for k in range(5):  # one pair through scipy's own solver
        want, _ = Rotation.align_vectors([b[k]], [a[k]])
        np.testing.assert_allclose(_scipy_quat(q[k]).as_matrix(), want.as_matrix(), atol=1e-9)
    # opposite and equal directions
    half = rot.quat_between(np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, -1.0], [3.0, 0.0, 0.0]]))
    np.testing.assert_allclose(_scipy_quat(half[0]).apply([0.0, 0.0, 1.0]), [0.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(half[1]), [1.0, 0.0, 0.0, 0.0], atol=1e-15)


def test_swing_twist_recomposes_and_twist_is_about_the_axis():
    rng = np.random.default_rng(12)
    q = rot.axis_angle_to_quat(random_axis_angle(rng, 300, 3.0))
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    swing, twist = rot.swing_twist(q, axis)
    # q = swing * twist (scipy composes left-to-right as "apply twist, then swing")
    np.testing.assert_allclose((_scipy_quat(swing) * _scipy_quat(twist)).as_matrix(), _scipy_quat(q).as_matrix(),
                               atol=1e-12)
    # the twist is a rotation about the axis, the swing about an axis normal to it
    twist_vec = _scipy_quat(twist).as_rotvec()
    np.testing.assert_allclose(np.cross(twist_vec, axis), 0.0, atol=1e-12)
    swing_vec = _scipy_quat(swing).as_rotvec()
    np.testing.assert_allclose(swing_vec @ axis, 0.0, atol=1e-12)
    np.testing.assert_allclose(rot.twist_angle(q, axis), twist_vec @ axis, atol=1e-12)
    # a pure rotation about the axis is all twist, angles wrapped to (-pi, pi]
    angles = np.array([-3.0, -1.0, 0.0, 0.5, 3.1])
    pure = rot.axis_angle_to_quat(angles[:, None] * axis)
    np.testing.assert_allclose(rot.twist_angle(pure, axis), angles, atol=1e-12)
    np.testing.assert_allclose(rot.twist_angle(-pure, axis), angles, atol=1e-12)


def test_axes_conversion_is_a_quarter_turn_about_x():
    from backend.motion.axes import SMPLX_TO_BLENDER, blender_to_smplx, smplx_to_blender

    quarter = Rotation.from_euler("x", 90, degrees=True).as_matrix()
    np.testing.assert_allclose(SMPLX_TO_BLENDER, quarter, atol=1e-15)
    points = np.random.default_rng(13).normal(size=(4, 5, 3))
    np.testing.assert_allclose(smplx_to_blender(points), points @ quarter.T, atol=1e-15)
    np.testing.assert_allclose(blender_to_smplx(smplx_to_blender(points)), points, atol=1e-15)
    up, forward = smplx_to_blender([0.0, 1.0, 0.0]), smplx_to_blender([0.0, 0.0, 1.0])
    np.testing.assert_allclose(up, [0.0, 0.0, 1.0])  # SMPL-X up is Blender's +Z
    np.testing.assert_allclose(forward, [0.0, -1.0, 0.0], atol=1e-15)  # and the character faces -Y


def test_modules_are_numpy_only():
    code = ("import sys; import backend.motion.rotations, backend.motion.fk, backend.motion.bvh, "
            "backend.motion.axes, "
            "backend.motion.resample, backend.motion.hands; "
            "bad = [m for m in ('torch', 'scipy', 'bpy', 'mathutils', 'mannequin') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
