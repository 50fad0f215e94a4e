"""The .npz round trip through motion.py, and the relaxed-hand-mean import from mannequin-x."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util

import numpy as np
import pytest

from backend.errors import WeightsError
from backend.motion import hands
from backend.motion.fk import forward_kinematics
from backend.motion.motion import Motion, load_npz, save_npz


def sample_motion(frames: int = 12) -> Motion:
    rng = np.random.default_rng(0)
    return Motion(poses=rng.normal(size=(frames, 165)) * 0.4, trans=rng.normal(size=(frames, 3)), fps=29.97,
                  betas=rng.normal(size=10), gender="male")


def test_npz_round_trip(tmp_path):
    motion = sample_motion()
    path = tmp_path / "take.npz"
    save_npz(motion, path)
    back = load_npz(path)
    np.testing.assert_array_equal(back.poses, motion.poses)
    np.testing.assert_array_equal(back.trans, motion.trans)
    np.testing.assert_array_equal(back.betas, motion.betas)
    assert back.fps == 29.97 and back.gender == "male"
    a, _ = forward_kinematics(back.poses, back.trans)
    b, _ = forward_kinematics(motion.poses, motion.trans)
    np.testing.assert_array_equal(a, b)


def mannequin_hand_mean() -> np.ndarray:
    """Read the asset independently (through importlib.resources) to check the module's loader."""
    with importlib.resources.as_file(importlib.resources.files("mannequin") / "assets" / "smplx_calibration.npz") \
            as path, np.load(path) as data:
        return np.asarray(data["hand_mean"], np.float32).reshape(90)


def test_relaxed_hand_mean_comes_from_mannequin_x():
    mean = hands.relaxed_hand_mean()
    assert mean.shape == (90,) and mean.dtype == np.float32
    np.testing.assert_array_equal(mean, mannequin_hand_mean())
    # a relaxed hand: every finger joint is bent, and the right hand mirrors the left (x kept, y and z negated)
    left, right = mean[:45].reshape(15, 3), mean[45:].reshape(15, 3)
    assert np.all(np.linalg.norm(left, axis=1) > 0.05)
    np.testing.assert_allclose(right, left * np.array([1.0, -1.0, -1.0]), atol=1e-3)
    mean[:] = 0.0  # callers get a copy
    assert np.any(hands.relaxed_hand_mean() != 0.0)


def test_load_npz_with_the_hand_mean_adds_it(tmp_path):
    motion = sample_motion()
    path = tmp_path / "beat2_style.npz"
    save_npz(motion, path)
    mean = hands.relaxed_hand_mean()
    relaxed = load_npz(path, hand_mean=mean)
    np.testing.assert_allclose(relaxed.poses[:, 75:], motion.poses[:, 75:] + mean, atol=1e-6)
    np.testing.assert_array_equal(relaxed.poses[:, :75], motion.poses[:, :75])  # body, jaw, eyes untouched
    via_convention = hands.load_npz_convention(path, "relaxed")
    np.testing.assert_array_equal(via_convention.poses, relaxed.poses)
    np.testing.assert_array_equal(hands.load_npz_convention(path, "flat").poses, motion.poses)
    with pytest.raises(ValueError, match="convention"):
        hands.load_npz_convention(path, "mean")


def test_split_keys_beat2_file_converts_to_absolute_hands(tmp_path):
    # a BEAT2-like file: split SMPL-X keys and relaxed-relative hands of zero = the relaxed hand itself
    frames = 5
    path = tmp_path / "split.npz"
    np.savez(path, root_orient=np.zeros((frames, 3)), pose_body=np.zeros((frames, 63)),
             pose_hand=np.zeros((frames, 90)), trans=np.zeros((frames, 3)), mocap_frame_rate=np.array(30.0))
    motion = hands.load_npz_convention(path, "relaxed")
    np.testing.assert_allclose(motion.poses[:, 75:], np.tile(hands.relaxed_hand_mean(), (frames, 1)), atol=1e-7)
    # the relaxed fingers really bend: fingertips move compared with the flat hand
    flat, _ = forward_kinematics(np.zeros((1, 165)))
    bent, _ = forward_kinematics(motion.poses[:1])
    assert np.linalg.norm(bent[0, 27] - flat[0, 27]) > 0.01  # left_index3


def test_relaxed_flat_conversions_are_inverse():
    poses = sample_motion().poses
    there = hands.relaxed_to_flat(poses)
    np.testing.assert_allclose(hands.flat_to_relaxed(there), poses, atol=1e-6)
    as_joints = hands.relaxed_to_flat(poses.reshape(-1, 55, 3))
    assert as_joints.shape == (12, 55, 3)
    np.testing.assert_allclose(as_joints.reshape(-1, 165), there, atol=0)
    with pytest.raises(ValueError, match="165"):
        hands.relaxed_to_flat(np.zeros((3, 52, 3)))


def test_missing_mannequin_x_names_the_install_command(monkeypatch):
    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    hands._load_hand_mean.cache_clear()
    monkeypatch.setattr(hands.importlib.metadata, "distribution", no_dist)
    monkeypatch.setattr(hands.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(WeightsError, match="pip install mannequin-x"):
            hands.relaxed_hand_mean()
    finally:
        hands._load_hand_mean.cache_clear()
