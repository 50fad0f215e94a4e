"""Scope, rotation modes and key reduction of a take's channels (pure numpy, no bpy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blender_addon import channels

ROOT = Path(__file__).resolve().parents[2]


def _random_quaternions(rng, shape):
    q = rng.normal(size=shape + (4,))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _gesture_like(frames=300, seed=0):
    """A smooth, speech-like channel: a few slow sways plus faster beats."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0
    return (0.3 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6)) + 0.1 * np.sin(2 * np.pi * 1.7 * t)
            + 0.05 * np.sin(2 * np.pi * 3.1 * t + 1.0))


@pytest.mark.parametrize("order", channels.EULER_ORDERS)
def test_euler_round_trip_in_every_order(order):
    rng = np.random.default_rng(1)
    q = _random_quaternions(rng, (200,))
    euler = channels.matrix_to_euler(channels.quaternion_to_matrix(q), order)
    assert np.allclose(channels.euler_to_matrix(euler, order), channels.quaternion_to_matrix(q), atol=1e-9)


def test_blender_euler_convention_applies_the_first_letter_first():
    # 'XYZ' with only X = 90 deg then Z = 90 deg: +Y goes to +Z (about X), then stays on +Z (about Z).
    matrix = channels.euler_to_matrix(np.radians([90.0, 0.0, 90.0]), "XYZ")
    assert np.allclose(matrix @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    assert np.allclose(matrix @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize("order", channels.EULER_ORDERS)
def test_euler_and_quaternions_agree_with_blenders_mathutils(order):
    """Blender's own Euler and Quaternion types are the oracle for the add-on's channel conversions."""
    pytest.importorskip("bpy")
    from mathutils import Euler, Quaternion

    rng = np.random.default_rng(7)
    angles = rng.uniform(-3.0, 3.0, size=(40, 3))
    for euler in angles:
        want = np.array(Euler(euler.tolist(), order).to_matrix())
        assert np.allclose(channels.euler_to_matrix(euler, order), want, atol=1e-6)
        q = np.array(Euler(euler.tolist(), order).to_quaternion())
        assert channels.quaternion_angle(channels.euler_to_quaternion(euler, order), q) < 1e-5
        back = channels.matrix_to_euler(want.astype(np.float64), order)
        assert np.allclose(np.array(Euler(back.tolist(), order).to_matrix()), want, atol=1e-5)
    for q in _random_quaternions(rng, (40,)):
        axis, angle = Quaternion(q.tolist()).to_axis_angle()
        got = channels.quaternions_to_axis_angle(q)
        assert channels.quaternion_angle(channels.axis_angle_to_quaternion(got),
                                         np.array(Quaternion(axis, angle))) < 1e-5


def test_continuous_euler_never_jumps_and_is_the_same_rotation():
    # A bone spinning 3 full turns about Z (and wobbling): plain extraction wraps at +-180 degrees.
    t = np.linspace(0, 1, 400)
    angle = 6 * np.pi * t
    wobble = 0.4 * np.sin(10 * t)
    axis = np.stack([np.sin(wobble) * 0.3, np.zeros_like(t), np.ones_like(t)], -1)
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    q = np.concatenate([np.cos(angle / 2)[:, None], np.sin(angle / 2)[:, None] * axis], -1)
    for order in ("XYZ", "ZYX", "YXZ"):
        euler = channels.quaternions_to_continuous_euler(q[:, None], order)[:, 0]
        assert np.abs(np.diff(euler, axis=0)).max() < 0.2
        assert np.allclose(channels.euler_to_matrix(euler, order), channels.quaternion_to_matrix(q), atol=1e-9)


@pytest.mark.parametrize("order", channels.EULER_ORDERS)
def test_euler_to_quaternion_is_the_same_rotation_and_continuous(order):
    rng = np.random.default_rng(5)
    euler = np.cumsum(rng.normal(0, 0.3, size=(300, 3)), axis=0)  # wanders over several turns
    q = channels.euler_to_quaternion(euler, order)
    assert np.allclose(channels.quaternion_to_matrix(q), channels.euler_to_matrix(euler, order), atol=1e-9)
    assert ((q[1:] * q[:-1]).sum(-1) >= 0).all()


def test_axis_angle_channels_are_the_same_rotation():
    rng = np.random.default_rng(2)
    q = _random_quaternions(rng, (50,))
    axis_angle = channels.quaternions_to_axis_angle(q)
    half = axis_angle[:, :1] / 2
    back = np.concatenate([np.cos(half), np.sin(half) * axis_angle[:, 1:]], -1)
    assert np.allclose(channels.quaternion_angle(back, q), 0.0, atol=1e-6)


def test_scopes_key_only_their_joints():
    joints = ("pelvis", "left_knee", "spine2", "head", "jaw", "left_shoulder", "left_wrist", "left_index1")
    keep = {scope: [joints[i] for i in channels.bones_in_scope(joints, joints, scope)] for scope in channels.SCOPES}
    assert keep["FULL"] == list(joints)
    assert keep["UPPER"] == ["spine2", "head", "left_shoulder", "left_wrist", "left_index1"]
    assert keep["ARMS"] == ["left_shoulder", "left_wrist", "left_index1"]
    assert keep["HANDS"] == ["left_wrist", "left_index1"]
    assert keep["HEAD"] == ["head"]
    with pytest.raises(ValueError, match="scope must be one of"):
        channels.scope_joints("LEGS")


@pytest.mark.parametrize("tolerance", [1e-3, 1e-2])
def test_reduced_keys_stay_within_tolerance_at_every_frame(tolerance):
    for seed in range(5):
        y = _gesture_like(seed=seed)
        keys, slopes = channels.reduce_channel(y, tolerance)
        assert keys[0] == 0 and keys[-1] == len(y) - 1 and (np.diff(keys) > 0).all()
        back = channels.evaluate_keys(len(y), keys, y[keys], slopes)
        assert np.abs(back - y).max() <= tolerance + 1e-12
        assert len(keys) < len(y) * (0.25 if tolerance > 5e-3 else 0.5)  # smooth motion needs fewer keys


def test_sharp_corners_and_noise_still_stay_within_tolerance():
    rng = np.random.default_rng(3)
    y = np.concatenate([np.zeros(20), np.ones(5), rng.normal(0, 0.1, 30), np.linspace(1, -1, 10)])
    keys, slopes = channels.reduce_channel(y, 1e-3)
    assert np.abs(channels.evaluate_keys(len(y), keys, y[keys], slopes) - y).max() <= 1e-3 + 1e-12


def test_a_still_channel_keeps_two_keys_and_single_frames_one():
    keys, slopes = channels.reduce_channel(np.full(500, 0.25), 1e-4)
    assert keys.tolist() == [0, 499] and slopes.tolist() == [0.0, 0.0]
    assert channels.reduce_channel(np.array([3.0]), 1e-4)[0].tolist() == [0]


def test_handles_sit_at_thirds_so_the_bezier_is_the_hermite_segment():
    frames = np.array([10.0, 16.0, 40.0])
    values = np.array([0.0, 1.0, -0.5])
    slopes = np.array([0.1, 0.0, -0.2])
    left, right = channels.bezier_handles(frames, values, slopes)
    assert np.allclose(right[0], [12.0, 0.2]) and np.allclose(left[1], [14.0, 1.0])
    assert np.allclose(left[2], [32.0, -0.5 + 0.2 * 8]) and np.allclose(right[2], [48.0, -0.5 - 0.2 * 8])
    # The cubic Bezier with these control points, sampled at its parameter t, equals (H) at s = t.
    t = np.linspace(0, 1, 11)
    bezier = ((1 - t) ** 3 * values[0] + 3 * (1 - t) ** 2 * t * right[0, 1] + 3 * (1 - t) * t ** 2 * left[1, 1]
              + t ** 3 * values[1])
    x = ((1 - t) ** 3 * frames[0] + 3 * (1 - t) ** 2 * t * right[0, 0] + 3 * (1 - t) * t ** 2 * left[1, 0]
         + t ** 3 * frames[1])
    assert np.allclose(x, frames[0] + t * 6.0)
    assert np.allclose(bezier, channels.hermite(values[0], values[1], slopes[0], slopes[1], 6.0, t))


def test_per_channel_tolerances_bound_the_whole_rotation():
    tolerance = channels.Tolerance(rotation_deg=0.5, location_m=0.001)
    rng = np.random.default_rng(4)
    q = _random_quaternions(rng, (2000,))
    step = tolerance.per_channel("rotation_quaternion")
    moved = q + rng.choice([-step, step], size=q.shape)  # the worst case: every component off by the tolerance
    assert np.degrees(channels.quaternion_angle(moved, q)).max() <= 0.5 + 1e-9


def test_the_module_imports_without_bpy():
    code = ("import sys; import blender_addon.channels; "
            "bad = [m for m in ('bpy', 'mathutils', 'torch') if m in sys.modules]; assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
