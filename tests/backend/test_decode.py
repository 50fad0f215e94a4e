"""Decoding ExpGest features: de-normalisation, SG smoothing, BEAT BVH, SMPL-X (fixtures/expgest/decode.pt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.engines.expgest import decode as D
from backend.errors import EngineError
from backend.motion import rotations as rot


@pytest.fixture(scope="module")
def fx(fixtures_dir):
    return {k: v.numpy() for k, v in torch.load(fixtures_dir / "decode.pt").items()}


def test_denormalise_clips_std_at_001():
    x = np.array([[1.0, 2.0, -1.0]])
    out = D.denormalise(x, mean=np.array([1.0, 0.0, 5.0]), std=np.array([0.5, 0.001, 0.0]))
    np.testing.assert_allclose(out, [[1.5, 0.02, 4.99]])
    np.testing.assert_allclose(D.normalise(out, [1.0, 0.0, 5.0], [0.5, 0.001, 0.0]), x)


def test_savgol_matches_fixture(fx):
    np.testing.assert_allclose(D.smooth(fx["feats"], "faithful"), fx["feats_sg"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(D.smooth(fx["hyb_feats"], "faithful"), fx["hyb_feats_sg"], atol=1e-9, rtol=0)


def test_short_sequences_smooth_in_default_mode_only():
    x = np.cumsum(np.random.default_rng(0).normal(size=(9, 4)), axis=0)
    out = D.smooth(x, "default")
    assert out.shape == x.shape and not np.allclose(out, x)
    np.testing.assert_array_equal(D.smooth(x[:3], "default"), x[:3])
    with pytest.raises(EngineError, match="behaviour 'default'"):
        D.smooth(x, "faithful")


@pytest.mark.parametrize("tag", ["nosg", "sg"])
def test_beat_decode_matches_fixture(fx, tag):
    feats = fx["feats"] if tag == "nosg" else fx["feats_sg"]
    pose = D.decode_beat(feats, "faithful")
    np.testing.assert_allclose(pose.rotations_deg, fx[f"bvh_{tag}_rotations_deg"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(pose.positions, fx[f"bvh_{tag}_positions"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(pose.positions[0], fx[f"bvh_{tag}_offsets"], atol=1e-9, rtol=0)


def _parse_bvh(text: str) -> tuple[list[str], np.ndarray]:
    lines = text.split("\n")
    motion = lines.index("MOTION")
    rows = [line for line in lines[motion + 3:] if line]
    return lines[:motion + 3], np.array([[float(v) for v in row.split()] for row in rows])


@pytest.mark.parametrize("tag", ["nosg", "sg"])
def test_bvh_text_matches_reference_file(fx, fixtures_dir, tag, tmp_path):
    feats = fx["feats"] if tag == "nosg" else fx["feats_sg"]
    path = D.write_beat_bvh(tmp_path / "out.bvh", D.decode_beat(feats, "faithful"))
    ours = path.read_text()
    reference = (fixtures_dir / f"decode_1141_{tag}.bvh").read_text()
    head, values = _parse_bvh(ours)
    ref_head, ref_values = _parse_bvh(reference)
    # Hierarchy, channel lists, frame count and frame time: byte-identical.
    assert head == ref_head
    # Every MOTION row has the reference's layout ("%f " per value, trailing space) and the same values; the
    # rotation angles differ by float32 rounding only (≤ 1e-4 degrees, fixtures README §6).
    assert [len(r.split(" ")) for r in ours.split("MOTION")[1].splitlines()[3:]] == \
        [len(r.split(" ")) for r in reference.split("MOTION")[1].splitlines()[3:]]
    np.testing.assert_allclose(values, ref_values, atol=1e-4 + 1e-6, rtol=0)
    assert not (tmp_path / "out.bvh.tmp").exists()


@pytest.mark.parametrize("tag", ["nosg", "sg"])
def test_beat_to_smplx_faithful_matches_fixture(fx, tag):
    feats = fx["feats"] if tag == "nosg" else fx["feats_sg"]
    poses, trans = D.beat_feats_to_smplx(feats, "faithful")
    np.testing.assert_allclose(poses, fx[f"smplx_{tag}_poses"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(trans, fx[f"smplx_{tag}_trans"], atol=1e-9, rtol=0)


def test_hybrid_to_smplx_matches_fixture(fx):
    poses, trans = D.hybrid_feats_to_smplx(D.smooth(fx["hyb_feats"], "faithful"), "faithful")
    np.testing.assert_allclose(poses, fx["hyb_poses"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(trans, fx["hyb_trans"], atol=1e-9, rtol=0)
    nosg, _ = D.hybrid_feats_to_smplx(fx["hyb_feats"], "faithful")
    np.testing.assert_allclose(nosg, fx["hyb_poses_nosg"], atol=1e-9, rtol=0)
    default, _ = D.hybrid_feats_to_smplx(fx["hyb_feats"], "default")
    np.testing.assert_allclose(default, fx["hyb_source_axis_angle"], atol=1e-9, rtol=0)


def test_default_axis_angle_is_stable_near_pi():
    # Rotations of exactly π and π − 1e-7 about an oblique axis: the trace formula loses the axis there.
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    for angle in (np.pi, np.pi - 1e-7):
        m = np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew
        aa = rot.matrix_to_axis_angle(m)
        assert abs(np.linalg.norm(aa) - angle) < 1e-6
        assert abs(abs(np.dot(aa / np.linalg.norm(aa), axis)) - 1) < 1e-9
    m = np.eye(3) + 2 * skew @ skew  # exactly π
    assert not np.allclose(np.abs(D.faithful_matrix_to_axis_angle(m)), np.pi * axis, atol=1e-3)


def test_default_renormalises_smoothed_root_quaternion(fx):
    feats = fx["feats"].copy()
    feats[:, 3:7] *= 1.3   # an off-unit root quaternion, as smoothing or a network can produce
    faithful = D.decode_beat(feats, "faithful")
    default = D.decode_beat(feats, "default")
    reference = D.decode_beat(fx["feats"], "faithful")
    np.testing.assert_allclose(default.rotations_deg, reference.rotations_deg, atol=1e-3)
    assert np.abs(faithful.rotations_deg[:, 0] - reference.rotations_deg[:, 0]).max() > 1.0


@pytest.mark.parametrize(("smplx_joint", "smplx_child", "beat_joint", "beat_child"), [
    (16, 18, 37, 38),   # left_shoulder → elbow      = BEAT LeftArm → LeftForeArm
    (19, 21, 11, 12),   # right_elbow → wrist        = BEAT RightForeArm → RightHand
    (1, 4, 69, 70),     # left_hip → knee            = BEAT LeftUpLeg → LeftLeg
    (15, None, 7, 8),   # head                       = BEAT Head → HeadEnd (head up-vector)
    (12, 15, 6, 7),     # neck → head                = BEAT Neck1 → Head
    (41, 42, 29, 30),   # right_index2 → index3      = BEAT RightHandIndex2 → 3
])
def test_retarget_bones_follow_beat_bones(fx, smplx_joint, smplx_child, beat_joint, beat_child):
    """Forward kinematics of the retargeted SMPL-X pose points each bone where BEAT's bone points."""
    from backend.motion.skeleton import PARENTS, REST_JOINTS

    pose = D.decode_beat(fx["feats_sg"], "default")
    poses, trans = D.beat_to_smplx_retarget(pose)
    np.testing.assert_allclose(trans, pose.positions[:, 0] * 0.01)
    local = rot.axis_angle_to_matrix(poses)
    glob = np.empty_like(local)
    for j, parent in enumerate(PARENTS):
        glob[:, j] = local[:, j] if parent < 0 else glob[:, parent] @ local[:, j]
    beat_local = rot.quat_to_matrix(pose.quats.astype(np.float64))
    beat_glob = np.empty_like(beat_local)
    for j, parent in enumerate(D.BEAT_PARENTS):
        beat_glob[:, j] = beat_local[:, j] if parent < 0 else beat_glob[:, parent] @ beat_local[:, j]
    offsets = pose.positions[0]
    want = beat_glob[:, beat_joint] @ (offsets[beat_child] / np.linalg.norm(offsets[beat_child]))
    if smplx_child is None:   # the head: compare its up axis, BEAT's HeadEnd offset is straight up
        bone = np.array([0.0, 1.0, 0.0])
    else:
        bone = REST_JOINTS[smplx_child] - REST_JOINTS[smplx_joint]
        bone /= np.linalg.norm(bone)
    got = glob[:, smplx_joint] @ bone
    np.testing.assert_allclose(got, want, atol=1e-9)
    # the raw copy (faithful) does not have this property on the arm
    if smplx_joint == 16:
        raw, _ = D.beat_to_smplx_faithful(pose)
        raw_local = rot.axis_angle_to_matrix(raw)
        raw_glob = np.empty_like(raw_local)
        for j, parent in enumerate(PARENTS):
            raw_glob[:, j] = raw_local[:, j] if parent < 0 else raw_glob[:, parent] @ raw_local[:, j]
        assert np.abs(raw_glob[:, 16] @ bone - want).max() > 0.05
